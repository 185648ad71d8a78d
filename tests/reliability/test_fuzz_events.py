"""Property tests of the event edge: whatever arrives, a webhook, an S3 event or an inbox file
name, it is either a well-formed event or a typed refusal (EventError with 400, 401 or 413),
never an exception of another kind, and never something that walks out of its folder."""

from __future__ import annotations

import json
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlops_control import events, names
from mlops_control.errors import EventError
from tests.reliability import figures

SECRET = "fuzz-secret-value"
NOW = 1_790_000_000
KEY = "fuzz.events"

header_names = st.sampled_from([events.SIGNATURE_HEADER, events.TIMESTAMP_HEADER,
                                events.DELIVERY_ID_HEADER, "X-MLflow-Signature",
                                "content-type", "x-other"])
# Header values as an HTTP server hands them over: latin-1 text (digits of other scripts,
# superscripts and control characters included).
header_values = st.one_of(st.text(st.characters(max_codepoint=255), max_size=40),
                          st.sampled_from(["²", "\u0661\u0662\u0663", "1e9", "-5", "v1,", "v1,AAAA",
                                           str(NOW), "0" * 13, " 1790000000"]))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=12)
payloads = st.fixed_dictionaries({}, optional={
    "entity": st.sampled_from(["model_version_tag", "model_version", "model_version_alias",
                               "registered_model", ""]) | st.text(max_size=10),
    "action": st.sampled_from(["set", "deleted", "created"]) | st.text(max_size=10),
    "data": st.fixed_dictionaries({}, optional={
        "name": st.text(max_size=60) | st.sampled_from(["test-project", "../x", "a/b", ""]),
        "version": st.text(max_size=12) | st.integers() | st.sampled_from(["1", "01", "\u0661"]),
        "key": st.sampled_from(["deploy", "deprecated", "deployment.status"])
        | st.text(max_size=10),
        "value": st.sampled_from(["production", "../../etc", "staging\n"]) | json_values,
        "alias": st.text(max_size=10),
    }) | json_values,
}) | json_values


def _check(exc: EventError) -> None:
    assert exc.status in (400, 401, 413), exc.status
    assert exc.reason


@settings(max_examples=figures.examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(headers=st.dictionaries(header_names, header_values, max_size=4),
       body=st.binary(max_size=200))
def test_any_headers_and_body_are_refused_with_a_typed_answer(headers, body):
    figures.add(KEY, "webhook_headers")
    try:
        events.verify_webhook(headers, body, SECRET, now=NOW)
    except EventError as exc:
        _check(exc)
    else:
        raise AssertionError("an unsigned delivery was accepted")


@settings(max_examples=figures.examples(400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payload=payloads)
def test_a_correctly_signed_body_of_any_shape_is_parsed_or_refused_as_400(payload):
    figures.add(KEY, "webhook_bodies")
    body = json.dumps(payload).encode()
    delivery_id = "7f8a2c1e-0000-4000-8000-000000000001"
    headers = {"X-MLflow-Delivery-Id": delivery_id, "X-MLflow-Timestamp": str(NOW),
               "X-MLflow-Signature": events.sign_webhook(SECRET, delivery_id, str(NOW), body)}
    assert events.verify_webhook(headers, body, SECRET, now=NOW) == delivery_id
    try:
        event = events.parse_webhook(delivery_id, body)
    except EventError as exc:
        assert exc.status == 400 and exc.reason
        return
    assert event.event in events.WEBHOOK_EVENTS
    assert event.version is None or event.version.isdigit()
    assert not any(ord(c) < 32 for c in event.model)


def test_deeply_nested_json_in_a_signed_body_is_a_400_not_a_crash():
    body = b"[" * 60_000
    delivery_id = "7f8a2c1e-0000-4000-8000-000000000001"
    headers = {"X-MLflow-Delivery-Id": delivery_id, "X-MLflow-Timestamp": str(NOW),
               "X-MLflow-Signature": events.sign_webhook(SECRET, delivery_id, str(NOW), body)}
    events.verify_webhook(headers, body, SECRET, now=NOW)
    try:
        events.parse_webhook(delivery_id, body)
    except EventError as exc:
        assert exc.status == 400
    else:
        raise AssertionError("accepted")


def test_a_timestamp_in_other_digits_is_a_400_not_a_crash():
    body = b"{}"
    for stamp in ("²", "\u0661\u0667\u0669\u0660", "¹²³"):
        headers = {"X-MLflow-Delivery-Id": "7f8a2c1e-0000-4000", "X-MLflow-Timestamp": stamp,
                   "X-MLflow-Signature": "v1,AAAA"}
        try:
            events.verify_webhook(headers, body, SECRET, now=NOW)
        except EventError as exc:
            assert exc.status == 400 and "timestamp" in exc.reason
        else:
            raise AssertionError("accepted")


@settings(max_examples=figures.examples(200), deadline=None)
@given(body=st.binary(min_size=1, max_size=64), flip=st.integers(min_value=0, max_value=63))
def test_changing_any_byte_of_a_signed_body_breaks_the_signature(body, flip):
    figures.add(KEY, "tampered_bodies")
    delivery_id = "7f8a2c1e-0000-4000-8000-000000000001"
    signature = events.sign_webhook(SECRET, delivery_id, str(NOW), body)
    tampered = bytearray(body)
    tampered[flip % len(body)] ^= 0x01
    headers = {"X-MLflow-Delivery-Id": delivery_id, "X-MLflow-Timestamp": str(NOW),
               "X-MLflow-Signature": signature}
    try:
        events.verify_webhook(headers, bytes(tampered), SECRET, now=NOW)
    except EventError as exc:
        assert exc.status == 401
    else:
        raise AssertionError("a tampered body verified")


# --- S3 keys and inbox names ---------------------------------------------------------------
segment = st.sampled_from(["data", "test-project", "..", ".", "", "x.csv", ".x.csv", "a%2F..",
                           "..%2f", "x.parquet", "TEST", "a b", "%00", "~", "test-project\\..",
                           "x.csv\x00.txt"]) | st.text(string.ascii_letters + "./-_%+\\",
                                                       max_size=12)
keys = st.lists(segment, min_size=0, max_size=6).map("/".join)


@settings(max_examples=figures.examples(500), deadline=None)
@given(key=keys)
def test_a_data_key_is_a_project_file_under_the_prefix_or_refused(key):
    figures.add(KEY, "s3_keys")
    event = {"source": "aws.s3", "detail-type": "Object Created", "id": "e-1",
             "detail": {"bucket": {"name": "bucket"}, "object": {"key": key, "size": 1}}}
    try:
        data = events.parse_s3_object_created(event, "data")
    except EventError as exc:
        assert exc.status == 400
        return
    location = data.location.removeprefix("s3://bucket/")
    parts = location.split("/")
    assert parts[0] == "data" and parts[1] == data.project
    assert names.PROJECT_NAME_PATTERN.match(data.project)
    assert not any(p in ("", ".", "..") for p in parts)
    assert parts[-1].lower().endswith(events.DATA_SUFFIXES) and not parts[-1].startswith(".")


def test_traversing_keys_project_names_and_inbox_names_are_refused():
    for key in ("data/../secrets/x.csv", "data/test-project/../../x.csv", "data/../x/y.csv",
                "data/./test-project/x.csv", "data//test-project/x.csv", "../data/a/x.csv",
                "data/..%2F..%2Fetc/x.csv", "data/test-project/.hidden.csv",
                "data/Test-Project/x.csv", "data/test_project/x.csv",
                "data/test-project/x.exe"):
        event = {"source": "aws.s3", "detail-type": "Object Created",
                 "detail": {"bucket": {"name": "b"}, "object": {"key": key}}}
        try:
            events.parse_s3_object_created(event, "data")
        except EventError:
            continue
        raise AssertionError(f"{key!r} was accepted")
    for project, file in (("..", "x.csv"), ("x", "../y.csv"), ("../x", "y.csv"),
                          ("x", ".rejected"), ("A", "x.csv"), ("x", "y.txt")):
        try:
            events.project_from_key(f"{project}/{file}", "")
        except EventError:
            continue
        raise AssertionError(f"{project}/{file} was accepted")


def test_execution_names_stay_within_step_functions_rules_for_any_event():
    @settings(max_examples=figures.examples(300), deadline=None)
    @given(parts=st.lists(st.text(max_size=80), min_size=1, max_size=5))
    def names_are_valid(parts):
        figures.add(KEY, "execution_names")
        name = events.execution_name(*parts)
        assert 1 <= len(name) <= 80
        assert all(c in string.ascii_letters + string.digits + "-_" for c in name)
        assert name == events.execution_name(*parts)

    names_are_valid()

