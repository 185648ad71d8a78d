"""The scoring server fuzzed over real HTTP: schemathesis cases from docs/openapi/scoring.yaml
(made specific to the served model's columns, so that the search reaches the model), raw
requests of any shape, floods of oversized bodies with the server's memory measured, and
models that raise on some rows or take mixed types under concurrent load."""

from __future__ import annotations

import contextlib
import copy
import http.client
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.generation import GenerationMode

from tests.model_fixtures import Shelf
from tests.models import split_request
from tests.raw_http import exchange
from tests.reliability import figures
from tests.serving_process import Server, serving

pytestmark = pytest.mark.integration
KEY = "fuzz.scoring_http"
OPENAPI = Path(__file__).resolve().parents[2] / "docs" / "openapi" / "scoring.yaml"
MAX_BODY = 256 * 1024
"""A small limit for these servers, so that floods of bodies over it stay cheap."""
STALL_S = 2.0
"""How long these servers wait for a request that stops arriving (60 s by default)."""


@pytest.fixture(scope="module")
def server(shelf: Shelf, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(shelf.forest().path, tmp_path_factory.mktemp("fuzz-serving"), workers=2,
                 name="test-project", version="1",
                 env={"MLOPS_SERVING_MAX_BODY_BYTES": str(MAX_BODY),
                      "MLOPS_SERVING_KEEPALIVE_S": str(STALL_S)}) as running:
        yield running


def server_rss(server: Server) -> int:
    """Resident memory of the server: its supervisor and every worker."""
    parent = psutil.Process(server.proc.pid)
    total = 0
    for proc in (parent, *parent.children(recursive=True)):
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total


def assert_no_server_error(status: int, body: bytes) -> None:
    """No 5xx, except 500 MODEL_ERROR: the model itself raised on this input (documented)."""
    if status >= 500:
        payload = json.loads(body)
        assert status == 500 and payload["error_code"] == "MODEL_ERROR", (status, body[:300])


NUMBER = {"type": "number", "minimum": -1e6, "maximum": 1e6}
"""Values a forest fitted in float32 can take (the generic description covers the rest)."""


def model_specific(document: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    """The published description with the served model's columns filled in: records and
    column objects name them, so generated requests can be scored, not only refused."""
    doc = copy.deepcopy(document)
    record = {"type": "object", "required": columns, "additionalProperties": False,
              "properties": {c: NUMBER for c in columns}}
    schemas = doc["components"]["schemas"]
    schemas["DataframeRecords"]["properties"]["dataframe_records"] = {
        "type": "array", "minItems": 1, "maxItems": 3, "items": record}
    split = schemas["DataframeSplit"]["properties"]["dataframe_split"]
    split["required"] = ["columns", "data"]
    split["properties"]["columns"] = {"type": "array", "items": {"enum": columns},
                                      "minItems": len(columns), "maxItems": len(columns),
                                      "uniqueItems": True}
    split["properties"]["data"] = {"type": "array", "minItems": 1, "maxItems": 3, "items": {
        "type": "array", "minItems": len(columns), "maxItems": len(columns),
        "items": NUMBER}}
    return doc


@pytest.fixture(scope="module")
def strategy(shelf: Shelf) -> Any:
    document = yaml.safe_load(OPENAPI.read_text())
    generic = schemathesis.openapi.from_dict(document)
    specific = schemathesis.openapi.from_dict(model_specific(document,
                                                             list(shelf.forest().X.columns)))
    # The model-specific description is stricter than the server (which, like MLflow, takes
    # true or "1.5" in a double column): only its positive cases are used.
    cases = [operation.ok().as_strategy(generation_mode=mode)
             for schema, modes in ((generic, (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)),
                                   (specific, (GenerationMode.POSITIVE,)))
             for operation in schema.get_all_operations()
             for mode in modes]
    return st.one_of(cases)


@settings(max_examples=figures.examples(300), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
@given(data=st.data())
def test_schemathesis_cases_conform_and_never_get_a_server_error(server, strategy, data):
    case = data.draw(strategy)
    response = case.call(base_url=server.url, timeout=30)
    checks = [status_code_conformance, content_type_conformance, response_schema_conformance]
    if case.meta is not None and case.meta.generation.mode == GenerationMode.NEGATIVE:
        checks.append(negative_data_rejection)
    case.validate_response(response, checks=checks)
    assert_no_server_error(response.status_code, response.content)
    figures.add(KEY, "schemathesis_cases")
    figures.add(KEY, f"schemathesis_status_{response.status_code}")


def raw(port: int, data: bytes) -> bytes:
    return exchange(port, data, half_close=True)


methods = st.sampled_from([b"GET", b"POST", b"PUT", b"HEAD", b"OPTIONS", b"DELETE"]) \
    | st.binary(min_size=1, max_size=6)
paths = st.sampled_from([b"/invocations", b"/ping", b"/health", b"/version", b"/",
                         b"/invocations?x=1", b"/invocations/../ping", b"/%00", b"*"]) \
    | st.binary(max_size=20).map(lambda b: b"/" + b.replace(b" ", b"").replace(b"\r", b"")
                                .replace(b"\n", b""))
headers = st.lists(st.sampled_from([
    b"Content-Type: application/json", b"Content-Type: text/csv", b"Content-Type: \xff",
    b"Content-Type: application/json; charset=latin-1", b"Expect: 100-continue",
    b"Connection: close", b"Connection: keep-alive", b"Content-Length: 99999999999",
    b"Content-Length: -1", b"Transfer-Encoding: chunked", b"Upgrade: websocket",
    b"Connection: Upgrade"]), max_size=4)


@settings(max_examples=figures.examples(200), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(method=methods, path=paths, extra=headers, body=st.binary(max_size=200),
       version=st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]) | st.sampled_from([b"HTTP/2", b""]))
def test_raw_requests_of_any_shape_never_get_a_server_error(server, method, path, extra, body,
                                                             version):
    lines = [method + b" " + path + (b" " + version if version else b""),
             b"Host: 127.0.0.1", *extra]
    if not any(h.startswith((b"Content-Length", b"Transfer-Encoding")) for h in extra):
        lines.append(b"Content-Length: %d" % len(body))
    answer = raw(server.port, b"\r\n".join(lines) + b"\r\n\r\n" + body)
    figures.add(KEY, "raw_requests")
    if not answer:
        return  # the parser gave up on the bytes and closed: nothing was served
    head, _, rest = answer.partition(b"\r\n\r\n")
    if head.startswith(b"HTTP/1.1 100"):  # Expect: 100-continue, then the real answer
        head, _, rest = rest.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), answer[:200]
    status = int(head.split(b" ", 2)[1])
    figures.add(KEY, f"raw_status_{status}")
    assert_no_server_error(status, rest)


def test_the_server_still_answers_after_the_fuzz(server, shelf):
    status, answer = server.post(split_request(shelf.forest().X))
    assert status == 200 and len(answer["predictions"]) == 3
    assert server.proc.poll() is None


def _oversized(port: int, announced: int, sent: int, expect: bool = False) -> int:
    """One request announcing ``announced`` bytes of body and sending ``sent`` of them; the
    status of the answer (0 for none)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\n"
                     + (b"Expect: 100-continue\r\n" if expect else b"")
                     + b"Content-Length: %d\r\n\r\n" % announced)
        if sent:
            with contextlib.suppress(OSError):
                sock.sendall(b"1" * sent)
        answer = b""
        with contextlib.suppress(OSError):
            while piece := sock.recv(65536):
                answer += piece
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1") else 0


def _flood(port: int, count: int, announced: int, sent: int, expect: bool = False,
           parallel: int = 1) -> Counter[int]:
    statuses: Counter[int] = Counter()
    lock = threading.Lock()

    def one() -> None:
        status = _oversized(port, announced, sent, expect)
        with lock:
            statuses[status] += 1

    for start in range(0, count, parallel):
        threads = [threading.Thread(target=one) for _ in range(min(parallel, count - start))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return statuses


def test_floods_of_oversized_bodies_are_413_and_the_servers_memory_stays_flat(server, shelf):
    rss_before = server_rss(server)
    started = time.monotonic()
    # Bodies just over the limit, sent in full: read and dropped as they arrive.
    full = _flood(server.port, 40, MAX_BODY + 1, MAX_BODY + 1)
    # Announced with Expect: 100-continue: refused before a byte of body is sent.
    early = _flood(server.port, 60, 100 * 2**20, 0, expect=True)
    # Bodies announcing 100 MB of which 1 MB is sent, the client then waiting: answered
    # once the body stops arriving, 50 at once.
    huge = _flood(server.port, 100, 100 * 2**20, 2**20, parallel=50)
    took = time.monotonic() - started
    rss_after = server_rss(server)
    grown = (rss_after - rss_before) / 2**20
    figures.record(KEY, oversized_bodies=sum(full.values()) + sum(huge.values())
                   + sum(early.values()),
                   oversized_bytes_sent_mb=round((40 * (MAX_BODY + 1) + 100 * 2**20) / 2**20),
                   oversized_claimed_mb=round((40 * (MAX_BODY + 1)) / 2**20 + 160 * 100),
                   server_rss_before_mb=round(rss_before / 2**20, 1),
                   server_rss_after_mb=round(rss_after / 2**20, 1), flood_seconds=round(took, 1))
    assert full == {413: 40} and early == {413: 60} and huge == {413: 100}
    assert grown < 20, f"the server grew by {grown:.1f} MB"
    assert server.post(split_request(shelf.forest().X))[0] == 200


def test_a_request_that_stops_arriving_is_dropped_and_others_are_served(server, shelf):
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as stalled:
        stalled.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 100"
                        b"\r\n\r\n{\"dataframe_split\"")
        # Meanwhile the server answers everyone else.
        assert server.post(split_request(shelf.forest().X))[0] == 200
        started = time.monotonic()
        answer = stalled.recv(65536)
        waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert waited < STALL_S + 3
    figures.record(KEY, stalled_request_dropped_after_s=round(waited, 1))


# --- models that raise on some rows, and mixed-type models under load ---------------------
def hammer(server: Server, bodies: list[bytes], seconds: float, clients: int = 6
           ) -> tuple[Counter[tuple[int, int]], list[str]]:
    """Clients on kept-alive connections, each cycling through ``bodies``; returns
    (body index, status) counts and transport errors."""
    counts: Counter[tuple[int, int]] = Counter()
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def client(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=15)
        i = offset
        while time.monotonic() < deadline:
            index = i % len(bodies)
            i += 1
            try:
                conn.request("POST", "/invocations", bodies[index],
                             {"Content-Type": "application/json"})
                response = conn.getresponse()
                payload = response.read()
                with lock:
                    counts[(index, response.status)] += 1
                if response.status >= 500:
                    assert_no_server_error(response.status, payload)
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    errors.append(repr(exc))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=15)
        conn.close()

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return counts, errors


def test_a_model_that_raises_on_some_rows_fails_only_those_requests(shelf, tmp_path):
    fragile = shelf.fragile()
    good = split_request(fragile.X, slice(0, 2))
    bad = split_request(fragile.X, slice(0, 2))
    bad["dataframe_split"]["data"][1][0] = -1.0  # a negative mean_radius breaks this model
    bodies = [json.dumps(good).encode(), json.dumps(bad).encode()]
    with serving(fragile.path, tmp_path, workers=2) as server:
        counts, errors = hammer(server, bodies, seconds=4)
        assert server.proc.poll() is None
        assert server.post(good)[0] == 200
        status = server.control({"action": "status"})
        assert all(w["ready"] for w in status["workers"])
    figures.record("faults.model_raises", good_requests=counts[(0, 200)],
                   failing_requests=counts[(1, 500)], transport_errors=len(errors))
    assert errors == []
    assert set(counts) == {(0, 200), (1, 500)}, counts
    assert counts[(0, 200)] > 50 and counts[(1, 500)] > 50


def test_a_mixed_type_model_answers_every_request_under_concurrent_load(shelf, tmp_path):
    mixed = shelf.mixed()
    rows = mixed.X.head(2)
    body = {"dataframe_split": {"columns": list(rows.columns),
                                "data": json.loads(rows.to_json(orient="values"))}}
    with serving(mixed.path, tmp_path, workers=1) as server:
        counts, errors = hammer(server, [json.dumps(body).encode()], seconds=3, clients=8)
    figures.record("fuzz.scoring_http", mixed_model_requests=sum(counts.values()))
    assert errors == [] and set(counts) == {(0, 200)}, (counts, errors[:3])


@pytest.fixture(scope="module", params=["unsigned", "tensor"])
def unchecked_server(request: pytest.FixtureRequest, shelf: Shelf,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """Models without a column signature: no signature at all, or one float tensor."""
    saved = shelf.unsigned() if request.param == "unsigned" else shelf.tensor()
    with serving(saved.path, tmp_path_factory.mktemp(f"fuzz-{request.param}"), workers=1,
                 env={"MLOPS_SERVING_MAX_BODY_BYTES": str(MAX_BODY)}) as running:
        yield running


@pytest.fixture(scope="module")
def generic_strategy() -> Any:
    schema = schemathesis.openapi.from_dict(yaml.safe_load(OPENAPI.read_text()))
    return st.one_of([operation.ok().as_strategy(generation_mode=mode)
                      for operation in schema.get_all_operations()
                      for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)])


rows = st.lists(st.lists(st.one_of(st.integers(-5, 5), st.floats(allow_nan=False),
                                   st.text(max_size=3), st.none(), st.booleans()),
                         max_size=6), max_size=4)
payloads = st.one_of(
    rows.map(lambda r: {"instances": r}), rows.map(lambda r: {"inputs": r}),
    rows.map(lambda r: {"dataframe_split": {"data": r}}),
    st.tuples(st.lists(st.text(max_size=4), max_size=6), rows).map(
        lambda cr: {"dataframe_split": {"columns": cr[0], "data": cr[1]}}),
    st.dictionaries(st.text(max_size=4), st.integers() | st.text(max_size=3), max_size=4)
    .map(lambda r: {"dataframe_records": [r]}))


@settings(max_examples=figures.examples(150), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much, HealthCheck.data_too_large])
@given(data=st.data())
def test_models_without_a_column_signature_never_get_a_server_error(unchecked_server,
                                                                     generic_strategy, data):
    """Issue 13.6: every bad request to such a model is a 4xx naming the problem."""
    if data.draw(st.booleans()):
        case = data.draw(generic_strategy)
        response = case.call(base_url=unchecked_server.url, timeout=30)
        status, content = response.status_code, response.content
    else:
        status, answer = unchecked_server.post(data.draw(payloads))
        content = json.dumps(answer).encode()
        if status >= 400:
            assert answer["message"], answer
    figures.add(KEY, "unchecked_model_requests")
    # Stricter than assert_no_server_error: not even MODEL_ERROR, since nothing could check
    # this input before the model did (its ValueError is the input's fault).
    assert status < 500, (status, content[:300])
