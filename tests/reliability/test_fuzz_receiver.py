"""The control centre's HTTP entry point fuzzed over real HTTP: raw requests of any shape,
schemathesis cases from docs/openapi/control-centre.yaml, and signed deliveries of any body.
Nothing gets a 5xx or goes unanswered, nothing invalid starts any work (the control centre's
reconcile and training counters stay still), and a flood of oversized bodies leaves memory
flat."""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

from mlops_control import events, receiver, webhooks
from mlops_control.control_centre import ControlCentre
from mlops_control.dedupe import SeenDeliveries
from tests.raw_http import exchange
from tests.reliability import figures
from tests.reliability.conftest import running_centre, signed, tag_body

pytestmark = pytest.mark.integration
KEY = "fuzz.receiver"
OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi" / "control-centre.yaml"
REFUSALS = {400, 401, 404, 405, 411, 413}


@pytest.fixture(scope="module")
def centre(rel_mlflow, tmp_path_factory) -> Any:
    with running_centre(rel_mlflow.url, tmp_path_factory.mktemp("fuzz-centre")) as cc:
        yield cc


def work(centre: ControlCentre) -> dict[str, int]:
    """What would move if something were started: accepted webhooks, reconciles, trainings,
    and actions in the history."""
    with centre.history.lock:
        actions = len(centre.history.items)
    return {"accepted": centre.receiver.counts["accepted"], "reconciles": centre.reconciles,
            "training_jobs": centre.training_jobs, "actions": actions}


def raw_request(port: int, data: bytes) -> bytes:
    return exchange(port, data, timeout=5.0)


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1."), f"no HTTP answer: {answer[:80]!r}"
    return int(answer.split(b" ", 2)[1])


methods = st.sampled_from([b"GET", b"POST", b"PUT", b"DELETE", b"HEAD", b"OPTIONS", b"PATCH",
                           b"TRACE", b"CONNECT"]) | st.binary(min_size=1, max_size=8).filter(
    lambda m: all(65 <= c <= 90 for c in m))
paths = st.sampled_from([b"/webhooks/mlflow", b"/status", b"/healthz", b"/", b"/dashboards/x",
                         b"/webhooks/mlflow?x=1", b"/webhooks/mlflow/../status", b"//status",
                         b"/%2e%2e/etc/passwd", b"/\xff\xfe", b"*", b"/webhooks/MLFLOW"]) \
    | st.binary(max_size=30).map(lambda b: b"/" + b.replace(b" ", b"").replace(b"\r", b"")
                                .replace(b"\n", b""))
header_lines = st.lists(st.sampled_from([
    b"X-MLflow-Signature: v1,AAAA", b"X-MLflow-Signature: v2,x", b"X-MLflow-Timestamp: \xb2",
    b"X-MLflow-Timestamp: 99999999999999", b"X-MLflow-Delivery-Id: ../../etc",
    b"X-MLflow-Delivery-Id: 7f8a2c1e-0000-4000-8000-000000000001", b"Content-Type: text/csv",
    b"Transfer-Encoding: chunked", b"Expect: 100-continue", b"Connection: keep-alive",
    b"Content-Length: -1", b"Content-Length: \xb2", b"Content-Length: 1e3", b"Host: \x00"])
    | st.binary(max_size=40).map(lambda b: b"X-" + b.replace(b"\r", b"").replace(b"\n", b"")
                                + b": v"), max_size=5)


@settings(max_examples=figures.examples(250), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(method=methods, path=paths, headers=header_lines, body=st.binary(max_size=300),
       version=st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"])
       | st.sampled_from([b"HTTP/0.9", b"HTTP/2.0", b"", b"X", b"HTTP/1.1 extra"]))
def test_raw_requests_of_any_shape_get_a_4xx_or_2xx_and_start_nothing(
        centre, method, path, headers, body, version):
    before = work(centre)
    lines = [method + b" " + path + (b" " + version if version else b""), *headers]
    if not any(h.lower().startswith((b"content-length", b"transfer-encoding"))
               for h in headers):
        lines.append(b"Content-Length: %d" % len(body))
    answer = raw_request(centre.receiver.port, b"\r\n".join(lines) + b"\r\n\r\n" + body)
    figures.add(KEY, "raw_requests")
    if version not in (b"HTTP/1.1", b"HTTP/1.0") and not answer.startswith(b"HTTP/"):
        # Until a request line names HTTP/1.x, the server speaks HTTP/0.9: no status line,
        # the body alone (a page, or the reason of a refusal).
        assert answer.startswith((b"{", b"<")) or answer == b"", answer[:100]
        assert work(centre) == before
        return
    status = status_of(answer)
    assert status < 500, answer[:300]
    figures.add(KEY, f"raw_status_{status}")
    assert work(centre) == before, "an unsigned request started work"


def test_the_receiver_still_answers_after_the_raw_fuzz(centre):
    with requests.get(f"http://127.0.0.1:{centre.receiver.port}/healthz", timeout=5) as answer:
        assert answer.status_code == 200 and answer.json() == {"ok": True}


# --- schemathesis, from the published description ------------------------------------------
@pytest.fixture(scope="module")
def openapi() -> Any:
    return schemathesis.openapi.from_path(OPENAPI)


@pytest.fixture(scope="module")
def strategy(openapi) -> Any:
    cases = [operation.ok().as_strategy(generation_mode=mode)
             for operation in openapi.get_all_operations()
             for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)]
    return st.one_of(cases)


@settings(max_examples=figures.examples(300), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
@given(data=st.data())
def test_schemathesis_cases_conform_to_the_description_and_start_nothing(centre, strategy,
                                                                         data):
    case = data.draw(strategy)
    before = work(centre)
    response = case.call(base_url=f"http://127.0.0.1:{centre.receiver.port}", timeout=10)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance]
    if case.meta is not None and case.meta.generation.mode == GenerationMode.NEGATIVE:
        checks.append(negative_data_rejection)
    case.validate_response(response, checks=checks)
    figures.add(KEY, "schemathesis_cases")
    figures.add(KEY, f"schemathesis_status_{response.status_code}")
    # Unsigned (schemathesis does not know the secret): nothing may be accepted or started.
    assert work(centre) == before


# --- correctly signed bodies of any shape ------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=10)
odd_values = st.sampled_from(["../../etc", "staging;rm -rf /", "", "a\u0000b", "x" * 6000,
                              "production\n", "$(id)", "true"]) | json_values


@st.composite
def deliveries(draw: st.DrawFn) -> Any:
    """MLflow-shaped deliveries with some fields made odd; a few not shaped at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    data: dict[str, Any] = {"name": "nobody-here", "version": "1", "key": "deploy",
                            "value": "production"}
    for field in draw(st.sets(st.sampled_from(["name", "version", "key", "value", "drop"]),
                              max_size=3)):
        if field == "drop":
            data.pop(draw(st.sampled_from(sorted(data))), None)
        elif field == "name":
            data["name"] = draw(st.sampled_from(["../../etc", "a b", "x" * 300, "",
                                                 "Test-Project", "ghost;drop"]) | odd_values)
        elif field == "version":
            data["version"] = draw(st.sampled_from(["../1", "-1", "1.0", "", "99999999999",
                                                    "\u0661"]) | st.integers(-5, 10**10))
        elif field == "key":
            data["key"] = draw(st.sampled_from(["deprecated", "deployment.status",
                                                "lineage.trigger", "other"]) | odd_values)
        else:
            data["value"] = draw(odd_values)
    entity, action = draw(st.sampled_from([
        ("model_version_tag", "set"), ("model_version_tag", "deleted"),
        ("model_version", "created"), ("model_version_alias", "created"),
        ("registered_model", "created"), ("model_version_tag", "exploded")]))
    return {"entity": entity, "action": action, "timestamp": "2026-11-26T12:00:00+00:00",
            "data": data}


@settings(max_examples=figures.examples(150), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(payload=deliveries())
def test_signed_deliveries_of_any_body_start_no_deployment_or_training(centre, payload):
    secret = webhooks.local_secret(centre.settings.secrets_dir)
    body = json.dumps(payload).encode()
    before = work(centre)
    answer = requests.post(centre.receiver.url, data=body, headers=signed(secret, body),
                           timeout=10)
    figures.add(KEY, "signed_deliveries")
    figures.add(KEY, f"signed_status_{answer.status_code}")
    assert answer.status_code in (200, 202, 400), answer.text
    if answer.status_code != 202:
        assert centre.receiver.counts["accepted"] == before["accepted"]
    assert centre.wait_idle(60)
    after = work(centre)
    # At most a reconcile of a model that does not exist: it finds nothing to do.
    assert after["training_jobs"] == before["training_jobs"]
    assert after["actions"] == before["actions"], centre.history.items[-3:]


def test_a_signed_deploy_tag_for_a_model_that_is_not_registered_does_nothing(centre):
    secret = webhooks.local_secret(centre.settings.secrets_dir)
    body = tag_body(f"ghost-{uuid.uuid4().hex[:6]}", "1", "deploy", "production")
    before = work(centre)
    answer = requests.post(centre.receiver.url, data=body, headers=signed(secret, body),
                           timeout=10)
    assert answer.status_code == 202
    assert centre.wait_idle(60)
    after = work(centre)
    assert after["reconciles"] == before["reconciles"] + 1 and after["actions"] == before[
        "actions"]
    assert centre.backend.records() == []


# --- size limits and memory --------------------------------------------------------------
def test_a_flood_of_oversized_bodies_is_refused_with_413_and_memory_stays_flat(centre):
    port = centre.receiver.port
    chunk = b"x" * (1 << 20)
    me = psutil.Process()
    before = work(centre)
    rss_before = me.memory_info().rss
    statuses = []
    for _ in range(200):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST /webhooks/mlflow HTTP/1.1\r\nHost: x\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 104857600\r\n\r\n")
            with contextlib.suppress(OSError):
                sock.sendall(chunk)  # a megabyte of the announced 100 MB, never read
            answer = b""
            try:
                while piece := sock.recv(4096):
                    answer += piece
            except OSError:
                pass
            statuses.append(status_of(answer))
    rss_after = me.memory_info().rss
    grown_mb = (rss_after - rss_before) / 2**20
    figures.record(KEY, oversized_bodies=len(statuses), oversized_claimed_mb=200 * 100,
                   rss_growth_mb=round(grown_mb, 1))
    assert set(statuses) == {413}
    assert grown_mb < 25, f"the process grew by {grown_mb:.1f} MB"
    assert work(centre)["accepted"] == before["accepted"]


def test_a_client_that_never_sends_its_body_is_dropped(tmp_path, monkeypatch):
    monkeypatch.setattr(receiver, "READ_TIMEOUT_S", 1.0)
    seen = SeenDeliveries(tmp_path / "seen.db")
    got: list[Any] = []
    rec = receiver.Receiver("127.0.0.1", 0, "secret", seen, on_event=got.append,
                            status=dict)
    rec.start()
    try:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", rec.port), timeout=10) as sock:
            sock.sendall(b"POST /webhooks/mlflow HTTP/1.1\r\nHost: x\r\nContent-Length: 100"
                         b"\r\n\r\nonly this")
            assert sock.recv(100) == b""  # closed without an answer, and without a crash
        assert time.monotonic() - started < 5
        conn = http.client.HTTPConnection("127.0.0.1", rec.port, timeout=5)
        conn.request("GET", "/healthz")
        assert conn.getresponse().status == 200
    finally:
        rec.stop()
        seen.close()
    assert got == []


def test_every_refusal_names_its_reason(centre):
    url = centre.receiver.url
    body = tag_body("m", "1", "deploy", "production")
    headers = signed("not-the-secret", body)
    answer = requests.post(url, data=body, headers=headers, timeout=5)
    assert answer.status_code == 401 and answer.json()["error"] == "signature does not match"
    answer = requests.put(url, data=body, timeout=5)
    assert answer.status_code == 405 and answer.headers["Allow"] == "GET, POST"
    answer = requests.post(url, data=b"x" * (events.MAX_WEBHOOK_BYTES + 1), timeout=5)
    assert answer.status_code == 413
