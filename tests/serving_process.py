"""Real scoring-server processes for the integration tests: on a free 127.0.0.1 port, always
stopped (by the pid we started, with its process group) when the test is done."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlops_control import procs
from mlops_control.backends.local import control

REPO = Path(__file__).resolve().parents[1]


class Server:
    def __init__(self, proc: subprocess.Popen[bytes], port: int, control_socket: Path,
                 log: Path) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.control_socket = control_socket
        self.log = log

    def post(self, body: Any, content_type: str = "application/json",
             path: str = "/invocations", timeout: float = 30) -> tuple[int, Any]:
        return post(f"{self.url}{path}", body, content_type, timeout)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"{self.url}{path}", timeout=10) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def control(self, message: dict[str, Any], timeout: float = 120) -> dict[str, Any]:
        return control(self.control_socket, message, timeout)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def post(url: str, body: Any, content_type: str = "application/json",
         timeout: float = 30) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


@contextlib.contextmanager
def serving(model_dir: Path, tmp: Path, workers: int = 2, name: str = "model",
            version: str = "1", env: dict[str, str] | None = None) -> Iterator[Server]:
    port = procs.free_port()
    sock = tmp / f"control-{port}.sock"
    log = tmp / f"server-{port}.log"
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlops_control.serving", str(model_dir), "--port", str(port),
             "--workers", str(workers), "--control-socket", str(sock), "--name", name,
             "--version", version],
            stdout=out, stderr=subprocess.STDOUT, env=environment, cwd=REPO,
            start_new_session=True)
    server = Server(proc, port, sock, log)
    try:
        procs.wait_http(f"{server.url}/ping", 120, alive=lambda: proc.poll() is None,
                        what="scoring server")
        # /ping answers once one worker is up; tests start when all of them are.
        while not all(w["ready"] for w in server.control({"action": "status"})["workers"]):
            time.sleep(0.05)
        yield server
    finally:
        if proc.poll() is None:
            procs.stop_group(proc.pid, timeout=20)
        proc.wait(timeout=30)
