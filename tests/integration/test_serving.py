"""The scoring server as a client sees it: real worker processes on a real port."""

from __future__ import annotations

import http.client
import json
import os
import signal
import stat
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.model_fixtures import Shelf
from tests.models import SavedModel, split_request
from tests.raw_http import exchange
from tests.serving_process import Server, post, serving

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(shelf: Shelf, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving(shelf.forest().path, tmp_path_factory.mktemp("serving"), name="test-project",
                 version="4") as running:
        yield running


def wait_for(condition: Any, timeout: float = 60, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} not met within {timeout}s")


def test_health_routes_answer_and_version_names_the_model(server: Server) -> None:
    assert server.get("/ping")[0] == 200
    assert server.get("/health")[0] == 200
    status, body = server.get("/version")
    assert status == 200
    version = json.loads(body)
    assert (version["name"], version["version"], version["flavor"]) == (
        "test-project", "4", "sklearn")


def test_every_format_is_answered_with_the_models_predictions(server: Server,
                                                              shelf: Shelf) -> None:
    saved = shelf.forest()
    X = saved.X.iloc[10:15]
    expected = {"predictions": saved.predict(X).tolist()}
    records = X.to_dict(orient="records")
    for body in (split_request(saved.X, slice(10, 15)), {"dataframe_records": records},
                 {"instances": records}, {"inputs": X.to_dict(orient="list")}):
        assert server.post(body) == (200, expected), list(body)
    assert server.post(X.to_csv(index=False).encode(), "text/csv") == (200, expected)


@pytest.mark.parametrize(("body", "content_type", "status", "says"), [
    (b"{oops", "application/json", 400, "not valid JSON"),
    ({"rows": []}, "application/json", 400, "dataframe_split"),
    ({"dataframe_split": {"columns": ["mean_radius"], "data": [[1.0]]}}, "application/json",
     400, "missing required columns 'mean_texture'"),
    (b"mean_radius\nabc\n", "text/csv", 400, "missing required columns"),
    (b"<a/>", "application/xml", 415, "application/xml"),
])
def test_bad_requests_are_refused_with_a_reason_and_the_server_stays_up(
        server: Server, shelf: Shelf, body: Any, content_type: str, status: int,
        says: str) -> None:
    answer_status, answer = server.post(body, content_type)
    assert answer_status == status
    assert says in answer["message"]
    assert answer["error_code"]
    assert server.post(split_request(shelf.forest().X))[0] == 200


def test_a_wrong_type_names_the_column_and_row(server: Server, shelf: Shelf) -> None:
    body = split_request(shelf.forest().X, slice(0, 2))
    body["dataframe_split"]["data"][1][7] = "high"
    status, answer = server.post(body)
    assert (status, answer["message"]) == (
        400, "column 'mean_concave_points', row 2: 'high' is not a number")


def test_a_body_over_the_limit_is_a_413_and_the_server_stays_up(server: Server,
                                                               shelf: Shelf) -> None:
    status, answer = server.post(b"[" + b"1.0," * 2_000_000 + b"1.0]")
    assert status == 413 and "6291456 bytes" in answer["message"]
    assert server.post(split_request(shelf.forest().X))[0] == 200


def test_unknown_routes_and_methods_are_named(server: Server) -> None:
    assert server.post({}, path="/predict")[0] == 404
    status, body = server.get("/invocations")
    assert status == 405 and b"POST" in body


def test_one_connection_carries_many_requests(server: Server, shelf: Shelf) -> None:
    saved = shelf.forest()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        for i in range(20):
            conn.request("POST", "/invocations", json.dumps(split_request(saved.X, slice(i, i + 1))),
                         {"Content-Type": "application/json"})
            response = conn.getresponse()
            assert response.status == 200
            assert json.loads(response.read())["predictions"] == saved.predict(
                saved.X.iloc[i:i + 1]).tolist()
        assert conn.sock is not None  # the same socket all along
    finally:
        conn.close()


def raw_exchange(server: Server, payload: bytes, until: int = 1) -> bytes:
    """Send bytes as they are; read until ``until`` complete responses have arrived."""
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(payload)
        received = b""
        while not _complete(received, until):
            chunk = conn.recv(65536)
            if not chunk:
                break
            received += chunk
    return received


def _complete(received: bytes, responses: int) -> bool:
    finals = [p for p in received.split(b"HTTP/1.1 ")[1:] if not p.startswith(b"100")]
    if len(finals) < responses:
        return False
    head, found, body = finals[-1].partition(b"\r\n\r\n")
    if not found:
        return False
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    return len(body) >= length


def request_bytes(body: bytes, extra: str = "") -> bytes:
    return (f"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{extra}\r\n").encode() + body


def test_pipelined_requests_are_answered_in_order(server: Server, shelf: Shelf) -> None:
    saved = shelf.forest()
    bodies = [json.dumps(split_request(saved.X, slice(i, i + 1))).encode() for i in (0, 1, 2)]
    received = raw_exchange(server, b"".join(request_bytes(b) for b in bodies), until=3)
    answers = [json.loads(part.partition(b"\r\n\r\n")[2])
               for part in received.split(b"HTTP/1.1 ")[1:]]
    assert [a["predictions"] for a in answers] == [
        saved.predict(saved.X.iloc[i:i + 1]).tolist() for i in (0, 1, 2)]


def half_closed_exchange(server: Server, payload: bytes) -> bytes:
    return exchange(server.port, payload, half_close=True)


def test_a_client_that_closes_its_side_still_gets_its_answers(server: Server,
                                                              shelf: Shelf) -> None:
    saved = shelf.forest()
    bodies = [json.dumps(split_request(saved.X, slice(i, i + 1))).encode() for i in (0, 1)]
    received = half_closed_exchange(server, b"".join(request_bytes(b) for b in bodies))
    answers = [part for part in received.split(b"HTTP/1.1 ")[1:]]
    assert [a[:6] for a in answers] == [b"200 OK", b"200 OK"], received[:300]
    assert [json.loads(a.partition(b"\r\n\r\n")[2])["predictions"] for a in answers] == [
        saved.predict(saved.X.iloc[i:i + 1]).tolist() for i in (0, 1)]


def test_a_request_cut_short_is_told_so(server: Server) -> None:
    # Found by the fuzzer: the go-ahead for the body, then nothing but the client's close.
    received = half_closed_exchange(
        server, b"POST /invocations HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")
    continued, _, final = received.partition(b"\r\n\r\n")
    assert continued == b"HTTP/1.1 100 Continue"
    assert final.startswith(b"HTTP/1.1 400 ") and b"ended before it was complete" in final
    partial = half_closed_exchange(server, request_bytes(b'{"inputs": [[1')[:-3])
    assert partial.startswith(b"HTTP/1.1 400 ") and b"ended before" in partial


def test_expect_100_continue_and_chunked_bodies_are_understood(server: Server,
                                                               shelf: Shelf) -> None:
    saved = shelf.forest()
    body = json.dumps(split_request(saved.X, slice(0, 2))).encode()
    received = raw_exchange(server, request_bytes(body, "Expect: 100-continue\r\n"))
    assert received.startswith(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("POST", "/invocations", iter([body[:100], body[100:]]),
                     {"Content-Type": "application/json"}, encode_chunked=True)
        response = conn.getresponse()
        assert response.status == 200
        assert json.loads(response.read())["predictions"] == saved.predict(
            saved.X.iloc[:2]).tolist()
    finally:
        conn.close()


def test_a_too_large_body_announced_with_expect_is_refused_before_it_is_sent(
        server: Server) -> None:
    head = (b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 50000000\r\nExpect: 100-continue\r\n\r\n")
    received = raw_exchange(server, head)
    assert received.startswith(b"HTTP/1.1 413 ")
    assert b"connection: close" in received


def test_malformed_http_is_a_400(server: Server) -> None:
    received = raw_exchange(server, b"NOT HTTP AT ALL\r\n\r\n")
    assert received.startswith(b"HTTP/1.1 400 ")


def test_concurrent_clients_each_get_the_answer_to_their_own_rows(server: Server,
                                                                  shelf: Shelf) -> None:
    saved = shelf.forest()
    expected = saved.predict(saved.X)
    wrong: list[str] = []

    def client(offset: int) -> None:
        for i in range(offset, len(saved.X), 16):
            rows = slice(i, i + 1 + i % 3)
            status, answer = server.post(split_request(saved.X, rows))
            if status != 200 or answer["predictions"] != expected[rows].tolist():
                wrong.append(f"rows {rows}: {status} {answer}")

    threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []


def test_the_control_socket_is_private_and_reports_the_workers(server: Server) -> None:
    mode = stat.S_IMODE(os.stat(server.control_socket).st_mode)
    assert mode == 0o600
    status = server.control({"action": "status"})
    assert status["ok"] and (status["name"], status["version"]) == ("test-project", "4")
    assert len(status["pids"]) == 2 and all(w["ready"] for w in status["workers"])
    assert server.control({"action": "dance"}) == {
        "ok": False, "error": "unknown action 'dance': use swap or status"}


# --- model switches, restarts and stops: a server each ----------------------------------------
def predictions(server: Server, saved: SavedModel) -> list[Any]:
    status, answer = server.post(split_request(saved.X, slice(0, 4)))
    assert status == 200, answer
    return list(answer["predictions"])


def test_swaps_under_continuous_load_fail_no_request(shelf: Shelf, tmp_path: Path) -> None:
    forest, seven, other = shelf.forest(), shelf.constant(7), shelf.other_forest()
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    stop = threading.Event()

    with serving(forest.path, tmp_path, version="1") as server:
        def client() -> None:
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            body = json.dumps(split_request(forest.X, slice(0, 2)))
            while not stop.is_set():
                try:
                    conn.request("POST", "/invocations", body,
                                 {"Content-Type": "application/json"})
                    response = conn.getresponse()
                    response.read()
                    statuses[response.status] += 1
                except (OSError, http.client.HTTPException) as exc:
                    errors.append(repr(exc))
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            conn.close()

        clients = [threading.Thread(target=client) for _ in range(6)]
        for t in clients:
            t.start()
        try:
            for version, target in (("2", seven), ("3", other), ("4", seven)):
                time.sleep(0.5)
                answer = server.control({"action": "swap", "model_dir": str(target.path),
                                         "name": "model", "version": version})
                assert answer["ok"], answer
                status = server.control({"action": "status"})
                assert status["version"] == version
                assert {w["version"] for w in status["workers"]} == {version}
                assert predictions(server, target) == target.predict(target.X.iloc[:4]).tolist()
        finally:
            stop.set()
            for t in clients:
                t.join()
    assert errors == []
    assert set(statuses) == {200} and sum(statuses.values()) > 100


def test_a_swap_to_a_model_that_cannot_load_changes_nothing(shelf: Shelf,
                                                            tmp_path: Path) -> None:
    forest = shelf.forest()
    with serving(forest.path, tmp_path, version="1") as server:
        before = predictions(server, forest)
        answer = server.control({"action": "swap", "model_dir": str(shelf.broken()),
                                 "name": "model", "version": "2"})
        assert not answer["ok"] and "skops" in answer["error"].lower()
        assert server.control({"action": "swap", "model_dir": str(tmp_path / "nowhere")}) == {
            "ok": False, "error": f"{tmp_path / 'nowhere'} holds no MLmodel file"}
        status = server.control({"action": "status"})
        assert status["version"] == "1" and {w["version"] for w in status["workers"]} == {"1"}
        assert predictions(server, forest) == before


def test_a_killed_worker_comes_back_with_the_live_model(shelf: Shelf, tmp_path: Path) -> None:
    forest, seven = shelf.forest(), shelf.constant(7)
    with serving(forest.path, tmp_path, version="1") as server:
        assert server.control({"action": "swap", "model_dir": str(seven.path),
                               "version": "2"})["ok"]
        victim = server.control({"action": "status"})["pids"][0]
        os.kill(victim, signal.SIGKILL)
        status = wait_for(lambda: (s := server.control({"action": "status"}))["pids"][0] != victim
                          and all(w["ready"] for w in s["workers"]) and s,
                          what="a replacement worker")
        assert {w["version"] for w in status["workers"]} == {"2"}
        for _ in range(10):  # whichever worker answers, it serves version 2
            assert predictions(server, seven) == [7, 7, 7, 7]
        assert "worker exited; restarting it" in server.logs()


def test_sigterm_lets_requests_in_flight_finish_then_exits_0(shelf: Shelf,
                                                            tmp_path: Path) -> None:
    slow = shelf.slow()
    with serving(slow.path, tmp_path, workers=1) as server:
        answers: list[tuple[int, Any]] = []

        def client(i: int) -> None:
            answers.append(post(f"{server.url}/invocations", split_request(slow.X, slice(i, i + 1))))

        clients = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        for t in clients:
            t.start()
        time.sleep(0.3)  # the requests are in the model's half-second predict
        server.proc.send_signal(signal.SIGTERM)
        for t in clients:
            t.join()
        assert server.proc.wait(timeout=30) == 0
    assert [status for status, _ in answers] == [200] * 4


def test_a_model_that_cannot_load_stops_the_start_with_the_reason(shelf: Shelf,
                                                                 tmp_path: Path) -> None:
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "mlops_control.serving", str(shelf.broken()), "--port", "0",
         "--workers", "1"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "could not be served" in result.stderr and "skops" in result.stderr.lower()


def test_the_observer_hears_of_every_batch(shelf: Shelf, tmp_path: Path) -> None:
    forest = shelf.forest()
    record = tmp_path / "batches.jsonl"
    env = {"MLOPS_SERVING_OBSERVER": "tests.observers:FileObserver",
           "TEST_OBSERVER_FILE": str(record)}
    with serving(forest.path, tmp_path, workers=1, env=env) as server:
        predictions(server, forest)
        server.post(split_request(forest.X, slice(0, 1)) | {"dataframe_split": {
            "columns": ["mean_radius"], "data": [[1.0]]}})  # refused before any batch
        batches = wait_for(lambda: record.exists() and [
            json.loads(line) for line in record.read_text().splitlines()], what="observer")
    assert len(batches) == 1
    assert batches[0]["rows"] == 4 and batches[0]["error"] is False
    assert batches[0]["inputs_shape"] == [4, 30]
    assert batches[0]["outputs"] == forest.predict(forest.X.iloc[:4]).tolist()
    assert np.isfinite(batches[0]["latency_s"])


def test_a_stop_while_the_model_loads_ends_the_start_cleanly(shelf: Shelf,
                                                            tmp_path: Path) -> None:
    import subprocess
    import sys

    from mlops_control import procs

    proc = subprocess.Popen(
        [sys.executable, "-m", "mlops_control.serving", str(shelf.forest().path), "--port",
         str(procs.free_port()), "--workers", "2", "--control-socket", str(tmp_path / "c.sock")],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        time.sleep(0.5)  # the workers are importing scikit-learn
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert not (tmp_path / "c.sock").exists()
    finally:
        if proc.poll() is None:
            procs.stop_group(proc.pid)
