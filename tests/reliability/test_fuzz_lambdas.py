"""The Lambda handlers called with hypothesis-generated events, AWS mocked by moto as in
tests/lambdas: the webhook (a public Function URL) answers every event with 200, 400, 401
or 413 and starts an execution only for a correctly signed delivery about a version the
registry wants deployed; the data trigger starts training only for a data file under a
configured project's prefix; the glue steps refuse input that is not theirs before they
touch the registry."""

from __future__ import annotations

import base64
import json
import time
import uuid
from typing import Any

import pytest
from aws_lambda_powertools.utilities.parser import ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambdas import data_trigger, deploy_steps, webhook
from mlops_control import events
from tests import events as recorded
from tests.lambdas.conftest import SECRET
from tests.reliability import figures

KEY = "fuzz.lambdas"
FUZZ = settings(max_examples=figures.examples(150), deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=10), c, max_size=4),
    max_leaves=12)


def executions(aws_: Any) -> int:
    return sum(len(aws_.executions(arn)) for arn in (aws_.deploy_arn, aws_.retire_arn,
                                                     aws_.train_arn))


def function_url(body: str, headers: dict[str, str], b64: bool = False) -> dict[str, Any]:
    event = recorded.load("function_url_webhook")
    for name in ("x-mlflow-delivery-id", "x-mlflow-signature", "x-mlflow-timestamp"):
        event["headers"].pop(name)
    event["headers"].update(headers)
    event["body"] = base64.b64encode(body.encode()).decode() if b64 else body
    event["isBase64Encoded"] = b64
    return event


def answer(response: dict[str, Any]) -> tuple[int, Any]:
    return response["statusCode"], json.loads(response["body"])


# --- the webhook ----------------------------------------------------------------------------
@FUZZ
@given(event=json_values)
def test_any_event_at_all_gets_400_and_starts_nothing(aws, context, event):
    before = executions(aws)
    status, body = answer(webhook.handler(event if isinstance(event, dict) else {"x": event},
                                          context))
    figures.add(KEY, "webhook_any_event")
    assert status in (400, 401, 413) and body["error"]
    assert executions(aws) == before


headers = st.dictionaries(
    st.sampled_from(["x-mlflow-signature", "x-mlflow-delivery-id", "x-mlflow-timestamp",
                     "X-MLflow-Signature", "content-type"]),
    st.sampled_from(["v1,AAAA", "²", "7f8a2c1e-0000-4000", str(int(time.time())), "",
                     "v1," + "A" * 44, "../../etc"]) | st.text(max_size=30), max_size=4)


@FUZZ
@given(body=st.text(max_size=300) | json_values.map(json.dumps), headers=headers,
       b64=st.booleans())
def test_unsigned_function_url_requests_get_4xx_and_start_nothing(aws, context, body, headers,
                                                                   b64):
    aws.registry.add("test-project", "1", deploy="production")
    before = executions(aws)
    status, payload = answer(webhook.handler(function_url(body, headers, b64), context))
    figures.add(KEY, "webhook_unsigned")
    assert status in (400, 401, 413), payload
    assert executions(aws) == before


odd = st.sampled_from(["../test-project", "test-project/../x", "Test-Project", "test_project",
                       "x" * 60, "a b", "", "../../etc", "prod;x", "1.0", "-1"]) | json_values


@st.composite
def deliveries(draw: st.DrawFn) -> Any:
    """MLflow-shaped deliveries about test-project, with some fields made odd."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    data: dict[str, Any] = {"name": "test-project", "version": draw(st.sampled_from(["1", "2"])),
                            "key": draw(st.sampled_from(["deploy", "deprecated",
                                                         "deployment.status"])),
                            "value": draw(st.sampled_from(["production", "staging", "true"]))}
    for field in draw(st.sets(st.sampled_from(["name", "version", "key", "value", "drop"]),
                              max_size=2)):
        if field == "drop":
            data.pop(draw(st.sampled_from(sorted(data))), None)
        else:
            data[field] = draw(odd)
    entity, action = draw(st.sampled_from([
        ("model_version_tag", "set"), ("model_version_tag", "deleted"),
        ("model_version", "created"), ("model_version_alias", "created"),
        ("registered_model", "created")]))
    return {"entity": entity, "action": action, "data": data}


@FUZZ
@given(payload=deliveries(), b64=st.booleans())
def test_signed_deliveries_start_work_only_for_what_the_registry_wants(aws, context, payload,
                                                                       b64):
    """The registry wants test-project v1 in production and nothing else: whatever a signed
    delivery says, at most that one deployment is ever started."""
    aws.registry.add("test-project", "1", deploy="production")
    body = json.dumps(payload)
    delivery_id = str(uuid.uuid4())
    stamp = str(int(time.time()))
    signed = {"x-mlflow-delivery-id": delivery_id, "x-mlflow-timestamp": stamp,
              "x-mlflow-signature": events.sign_webhook(SECRET, delivery_id, stamp,
                                                        body.encode())}
    status, answer_body = answer(webhook.handler(function_url(body, signed, b64), context))
    figures.add(KEY, "webhook_signed")
    figures.add(KEY, f"webhook_signed_{status}")
    assert status in (200, 400), answer_body
    deploys = aws.executions(aws.deploy_arn)
    assert len(deploys) <= 1 and executions(aws) == len(deploys)
    for execution in deploys:
        assert (execution["input"]["project"], execution["input"]["stage"],
                execution["input"]["version"]) == ("test-project", "production", "1")


def test_a_base64_body_over_the_limit_is_413_before_the_secret_is_read(aws, context,
                                                                       monkeypatch):
    from lambdas.common import adapters

    def no_secret(arn: str) -> str:
        raise AssertionError("the secret was fetched for an oversized body")

    monkeypatch.setattr(adapters, "secret_string", no_secret)
    body = "x" * (events.MAX_WEBHOOK_BYTES + 1)
    for b64 in (False, True):
        status, payload = answer(webhook.handler(function_url(body, {}, b64), context))
        assert status == 413 and "exceeds" in payload["error"]


# --- the data trigger ----------------------------------------------------------------------
segment = st.sampled_from(["data", "test-project", "..", ".", "", "x.csv", ".x.csv",
                           "x.parquet", "other-project", "%2e%2e", "a+b.csv", "x.csv.exe"]) \
    | st.text("abcxyz./-_%+", max_size=10)


def valid_key(key: str) -> bool:
    parts = key.split("/")
    return (len(parts) >= 3 and parts[0] == "data" and parts[1] == "test-project"
            and not any(p in ("", ".", "..") for p in parts)
            and parts[-1].lower().endswith((".csv", ".parquet", ".pq"))
            and not parts[-1].startswith("."))


@st.composite
def data_keys(draw: st.DrawFn) -> str:
    """``data/test-project/<file>.csv`` with some segments changed, added or removed."""
    parts = ["data", "test-project", draw(st.sampled_from(["new.csv", "x.parquet", "d.pq"]))]
    for _ in range(draw(st.integers(0, 2))):
        where = draw(st.integers(0, len(parts)))
        action = draw(st.sampled_from(["replace", "insert", "delete"]))
        if action == "insert" or not parts:
            parts.insert(where, draw(segment))
        elif action == "replace":
            parts[min(where, len(parts) - 1)] = draw(segment)
        else:
            parts.pop(min(where, len(parts) - 1))
    return "/".join(parts)


@FUZZ
@given(key=data_keys() | st.lists(segment, max_size=5).map("/".join),
       event_id=st.text(max_size=40), size=st.integers(-5, 10**12) | st.none())
def test_the_data_trigger_trains_only_on_data_files_under_a_project_prefix(aws, context, key,
                                                                           event_id, size):
    import urllib.parse

    event = recorded.load("s3_object_created")
    event["id"] = event_id or "e"
    event["detail"]["object"]["key"] = key
    event["detail"]["object"]["size"] = size
    before = len(aws.executions(aws.train_arn))
    try:
        result = data_trigger.handler(event, context)
    except ValidationError:
        figures.add(KEY, "data_trigger_refused_at_the_edge")
        assert len(aws.executions(aws.train_arn)) == before
        return
    figures.add(KEY, "data_trigger_events")
    figures.add(KEY, f"data_trigger_{result['result']}")
    decoded = urllib.parse.unquote_plus(key)
    if result["result"] == "ignored":
        assert len(aws.executions(aws.train_arn)) == before
    else:
        assert valid_key(decoded), (key, result)
        assert result["result"] in ("started", "duplicate")
    if not valid_key(decoded):
        assert result["result"] == "ignored"


@FUZZ
@given(event=json_values)
def test_the_data_trigger_refuses_events_of_another_shape_at_the_edge(aws, context, event):
    before = len(aws.executions(aws.train_arn))
    with pytest.raises(ValidationError):
        data_trigger.handler(event if isinstance(event, dict) else {"x": event}, context)
    figures.add(KEY, "data_trigger_other_shapes")
    assert len(aws.executions(aws.train_arn)) == before


# --- the glue steps ------------------------------------------------------------------------
@st.composite
def glue_requests(draw: st.DrawFn) -> dict[str, Any]:
    request: dict[str, Any] = {"project": "test-project", "stage": "production", "version": "1",
                               "replaces": None, "reason": "tagged"}
    for field in draw(st.sets(st.sampled_from(["project", "stage", "version", "replaces",
                                               "drop"]), max_size=1)):
        if field == "drop":
            request.pop(draw(st.sampled_from(sorted(request))), None)
        else:
            request[field] = draw(odd)
    return request


@FUZZ
@given(request=glue_requests(),
       outcome=st.sampled_from(["succeeded", "failed"]) | st.sampled_from(["other", 1, None]))
def test_the_finish_step_writes_tags_only_for_a_well_formed_request(aws, context, monkeypatch,
                                                                   request, outcome):
    monkeypatch.setenv("MLOPS_IMAGE_URI", "123.dkr.ecr.eu-west-1.amazonaws.com/x:1")
    monkeypatch.setenv("MLOPS_SAGEMAKER_ROLE_ARN", "arn:aws:iam::123456789012:role/sm")
    monkeypatch.setenv("MLOPS_CAPTURE_URI", "s3://bucket/capture")
    monkeypatch.setenv("MLOPS_STAGE_SETTINGS", "{}")
    aws.registry.add("test-project", "1")
    writes = len(aws.registry.writes)
    event = {"request": request, "outcome": outcome,
             "error": {"Error": "States.TaskFailed", "Cause": "x"}}
    try:
        deploy_steps.finish(event, context)
    except ValidationError:
        figures.add(KEY, "glue_refused")
        assert len(aws.registry.writes) == writes
        return
    except Exception as exc:  # a registry refusal for a version that does not exist
        from mlops_control.errors import ControlCentreError

        assert isinstance(exc, ControlCentreError), repr(exc)
    figures.add(KEY, "glue_accepted")
    import re

    assert re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?", request["project"])
    assert re.fullmatch(r"[0-9]{1,9}", str(request["version"]))
