"""Endpoints as local processes: the shared image's ``serve`` command on 127.0.0.1.

Each endpoint ``<project>-<stage>`` is one serving process (with a worker per core) on its own
port. A new version is first started in a throw-away candidate process on a free port and
smoke-tested there, so a model that fails to load, crashes or answers wrongly never touches
the live endpoint; only then does the live endpoint load it beside the current one and switch
(through its control socket), with no failed request. Records under ``<state>/run/endpoints``
let a restarted control centre adopt the endpoints that still run.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import socket
import sys
import threading
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from mlops_control import local_models, model_env, names, procs
from mlops_control.errors import ControlCentreError
from mlops_control.monitoring import store as metrics_store
from mlops_control.ports import PortBook
from mlops_control.registry import RegistryClient
from mlops_control.settings import Settings
from mlops_control.steps import smoke
from mlops_control.steps.backend import DeploymentFailed, DeployTarget

logger = logging.getLogger("mlops_control.local")

START_TIMEOUT_S = 120.0
SWAP_TIMEOUT_S = 120.0


@dataclass
class EndpointRecord:
    endpoint: str
    project: str
    stage: str
    port: int
    version: str
    model_dir: str
    python: str = ""
    """The interpreter the endpoint process runs (the model's own virtualenv, or ours)."""


class LocalBackend:
    def __init__(self, settings: Settings, registry: RegistryClient,
                 workers: int | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.workers = workers
        self.ports = PortBook(settings.run_dir / "ports.json", base=settings.endpoint_base_port)
        self.records_dir = settings.run_dir / "endpoints"
        self._lock = threading.RLock()

    # --- records --------------------------------------------------------------------------
    def _record_file(self, endpoint: str) -> Path:
        return self.records_dir / f"{endpoint}.json"

    def _managed(self, endpoint: str) -> procs.Managed:
        return procs.Managed(endpoint, self.records_dir / f"{endpoint}.pid",
                             self.settings.logs_dir / "endpoints" / f"{endpoint}.log")

    def _socket(self, endpoint: str) -> Path:
        # Unix socket paths are limited to ~107 bytes; keep them short and private.
        return self.settings.run_dir / "sock" / f"{endpoint[:60]}.sock"

    def records(self, project: str | None = None) -> list[EndpointRecord]:
        found = []
        if self.records_dir.is_dir():
            for file in sorted(self.records_dir.glob("*.json")):
                with contextlib.suppress(ValueError, TypeError, OSError):
                    record = EndpointRecord(**json.loads(file.read_text()))
                    if project is None or record.project == project:
                        found.append(record)
        return found

    def _save(self, record: EndpointRecord) -> None:
        self.records_dir.mkdir(parents=True, exist_ok=True)
        tmp = self._record_file(record.endpoint).with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(record), indent=2))
        tmp.replace(self._record_file(record.endpoint))

    def running(self, endpoint: str) -> bool:
        return self._managed(endpoint).pid() is not None

    # --- Backend --------------------------------------------------------------------------
    def live(self, project: str) -> dict[str, str]:
        return {r.stage: r.version for r in self.records(project) if self.running(r.endpoint)}

    def url(self, project: str, stage: str) -> str:
        return f"http://127.0.0.1:{self.ports.port(project, stage)}"

    def deploy(self, target: DeployTarget) -> None:
        with self._lock:
            model_dir = self._download(target)
            python = self._python(target, model_dir)
            payload = target.smoke_payload or _input_example(model_dir)
            live = self._live_record(target.endpoint)
            if live is None:
                self._start_endpoint(target, model_dir, payload, python)
            elif (live.python or sys.executable) != python:
                self._restart_in(live, target, model_dir, payload, python)
            else:
                self._replace(live, target, model_dir, payload, python)

    def retire(self, project: str, stage: str) -> None:
        endpoint = names.endpoint_name(project, stage)
        with self._lock:
            # The record goes first: while the process drains, the watchdog must not take a
            # recorded endpoint without a process for a crash. Killed in between, the process
            # is one with a pid file and no record, which recover() stops at the next start.
            self._record_file(endpoint).unlink(missing_ok=True)
            self._managed(endpoint).stop()
            self._socket(endpoint).unlink(missing_ok=True)
        logger.info("endpoint removed", extra={"endpoint": endpoint})

    def recover(self) -> list[str]:
        """Stop what a control centre that died mid-deployment left running: candidate
        processes, and endpoint processes started but never recorded (they would hold the
        endpoint's port, and the next deployment would fail on it). Only processes this
        state folder started are touched: a pid file is trusted only while its process has
        the recorded start time. Returns the names of the processes stopped."""
        stopped: list[str] = []
        if not self.records_dir.is_dir():
            return stopped
        recorded = {record.endpoint for record in self.records()}
        with self._lock:
            for pid_file in sorted(self.records_dir.glob("*.pid")):
                name = pid_file.stem
                if name in recorded:
                    continue
                if self._managed(name).stop():
                    stopped.append(name)
                    logger.warning("stopped a process left by a previous run",
                                   extra={"leftover": name})
        return stopped

    def stop_all(self) -> None:
        """Stop every endpoint process (records stay, so a restart brings them back)."""
        for record in self.records():
            self._managed(record.endpoint).stop()

    # --- steps ----------------------------------------------------------------------------
    def _download(self, target: DeployTarget) -> Path:
        try:
            return local_models.download(self.registry, self.settings.models_dir,
                                         target.project, target.version)
        except Exception as exc:  # any failure to fetch is a failed deployment, not a crash
            raise DeploymentFailed(f"could not download the model: {exc}") from exc

    def _python(self, target: DeployTarget, model_dir: Path) -> str:
        """The interpreter for the model: ours, or its own virtualenv (built the first time,
        with pip's lines in the control centre's log)."""
        def progress(line: str) -> None:
            logger.info(line, extra={"endpoint": target.endpoint})

        try:
            return model_env.python_for(model_dir, self.settings.state_dir / "envs",
                                        f"{target.project}/{target.version}", progress)
        except ControlCentreError as exc:
            raise DeploymentFailed(f"could not build the model's environment: {exc}") from None

    def _live_record(self, endpoint: str) -> EndpointRecord | None:
        file = self._record_file(endpoint)
        if not file.exists() or not self.running(endpoint):
            return None
        return EndpointRecord(**json.loads(file.read_text()))

    def _serve_argv(self, port: int, control_socket: Path | None,
                    python: str = sys.executable) -> list[str]:
        argv = [python, "-m", "mlops_control.container", "serve",
                "--host", "127.0.0.1", "--port", str(port)]
        if self.workers:
            argv += ["--workers", str(self.workers)]
        if control_socket is not None:
            argv += ["--control-socket", str(control_socket)]
        return argv

    def _serve_env(self, root: Path, model_dir: Path, target: DeployTarget) -> dict[str, str]:
        root.mkdir(parents=True, exist_ok=True)
        link = root / "model"
        tmp = root / "model.new"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(model_dir.resolve(), target_is_directory=True)
        tmp.replace(link)
        env = dict(os.environ)
        env.update({names.ENV_ML_ROOT: str(root), "MLOPS_MODEL_NAME": target.project,
                    "MLOPS_MODEL_VERSION": target.version})
        env.update(metrics_store.serving_env(self.settings.state_dir, root.name,
                                             self.registry.tracking_uri))
        return env

    def _start_endpoint(self, target: DeployTarget, model_dir: Path,
                        payload: dict[str, Any] | None, python: str = sys.executable,
                        smoke: bool = True) -> None:
        port = self.ports.port(target.project, target.stage)
        if procs.port_in_use(port):
            raise DeploymentFailed(
                f"port {port} for {target.endpoint} is taken by another program; free it")
        sock = self._socket(target.endpoint)
        sock.parent.mkdir(parents=True, exist_ok=True)
        sock.unlink(missing_ok=True)
        root = self.settings.run_dir / "roots" / target.endpoint
        managed = self._managed(target.endpoint)
        since = _log_size(managed.log_file)
        proc = managed.start(self._serve_argv(port, sock, python),
                             env=self._serve_env(root, model_dir, target))
        try:
            self._await_healthy(f"http://127.0.0.1:{port}", proc, managed.log_file, since)
            if smoke:
                self._smoke(f"http://127.0.0.1:{port}", payload)
        except DeploymentFailed:
            managed.stop()
            raise
        self._save(EndpointRecord(target.endpoint, target.project, target.stage, port,
                                  target.version, str(model_dir), python))
        logger.info("endpoint started", extra={"endpoint": target.endpoint, "port": port,
                                               "version": target.version})

    def _restart_in(self, live: EndpointRecord, target: DeployTarget, model_dir: Path,
                    payload: dict[str, Any] | None, python: str) -> None:
        """A version needing another interpreter than the live process runs cannot be swapped
        in: once it passed its candidate check, the endpoint restarts in the new environment
        (a short gap, unlike a swap); if that start fails the previous version comes back."""
        self._candidate_check(target, model_dir, payload, python)
        self._managed(live.endpoint).stop()
        try:
            self._start_endpoint(target, model_dir, payload, python)
        except DeploymentFailed:
            previous = DeployTarget(project=live.project, stage=live.stage,
                                    version=live.version, endpoint=live.endpoint,
                                    run_id=None, smoke_payload=None)
            self._start_endpoint(previous, Path(live.model_dir), None,
                                 live.python or sys.executable, smoke=False)
            raise

    def _replace(self, live: EndpointRecord, target: DeployTarget, model_dir: Path,
                 payload: dict[str, Any] | None, python: str = sys.executable) -> None:
        self._candidate_check(target, model_dir, payload, python)
        answer = control(self._socket(live.endpoint), {
            "action": "swap", "model_dir": str(model_dir), "name": target.project,
            "version": target.version}, timeout=SWAP_TIMEOUT_S)
        if not answer.get("ok"):
            raise DeploymentFailed(f"the live endpoint refused the new model: "
                                   f"{answer.get('error', 'no reason given')}")
        root = self.settings.run_dir / "roots" / live.endpoint
        # A restart of the endpoint process must come back with the version now live.
        self._serve_env(root, model_dir, target)
        live.version, live.model_dir = target.version, str(model_dir)
        self._save(live)
        logger.info("endpoint switched", extra={"endpoint": live.endpoint,
                                                "version": target.version})

    def _candidate_check(self, target: DeployTarget, model_dir: Path,
                         payload: dict[str, Any] | None, python: str = sys.executable) -> None:
        port = procs.free_port()
        name = f"{target.endpoint}-candidate"
        managed = self._managed(name)
        root = self.settings.run_dir / "roots" / name
        since = _log_size(managed.log_file)
        proc = managed.start([*self._serve_argv(port, None, python), "--workers", "1"],
                             env=self._serve_env(root, model_dir, target))
        try:
            self._await_healthy(f"http://127.0.0.1:{port}", proc, managed.log_file, since)
            self._smoke(f"http://127.0.0.1:{port}", payload)
        finally:
            managed.stop()

    def _await_healthy(self, url: str, proc: Any, log_file: Path, since: int) -> None:
        """Wait for /ping; on failure quote what this start logged (the log is appended to
        by every start of the endpoint, ``since`` is where this one began)."""
        try:
            procs.wait_http(f"{url}/ping", START_TIMEOUT_S, alive=lambda: proc.poll() is None,
                            what="model server")
        except (RuntimeError, TimeoutError) as exc:
            lines = _logged_since(log_file, since)
            raise DeploymentFailed(f"the model did not start: {_cause(lines) or exc}; "
                                   f"{_tail(lines)}") from None

    def _smoke(self, url: str, payload: dict[str, Any] | None) -> None:
        if payload is None:
            raise DeploymentFailed("no smoke test data: the version's run has no "
                                   f"{names.SMOKE_TEST_ARTIFACT} and the model no input example")
        body = json.dumps(payload).encode()
        request = urllib.request.Request(f"{url}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, answer = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, answer = exc.code, exc.read()
        except OSError as exc:
            raise DeploymentFailed(f"smoke test request failed: {exc}") from None
        smoke.check(status, answer, smoke.rows_in(payload))


def control(sock: Path, message: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    """One request on an endpoint's control socket: a JSON line out, a JSON line back."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.settimeout(timeout)
            conn.connect(str(sock))
            conn.sendall(json.dumps(message).encode() + b"\n")
            buffer = b""
            while not buffer.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                buffer += chunk
    except OSError as exc:
        raise ControlCentreError(f"endpoint control socket {sock} failed: {exc}") from None
    try:
        answer: dict[str, Any] = json.loads(buffer)
    except ValueError:
        raise ControlCentreError(f"endpoint control socket {sock} answered {buffer[:200]!r}") \
            from None
    return answer


def _input_example(model_dir: Path) -> dict[str, Any] | None:
    example = model_dir / "serving_input_example.json"
    if example.is_file():
        payload: dict[str, Any] = json.loads(example.read_text())
        return payload
    return None


def _log_size(log_file: Path) -> int:
    try:
        return log_file.stat().st_size
    except OSError:
        return 0


def _logged_since(log_file: Path, offset: int) -> list[str]:
    try:
        with open(log_file, "rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return []


def _cause(lines: list[str]) -> str | None:
    """The last exception line a dead server logged, e.g. ``ModuleNotFoundError: No module
    named 'lightgbm'``: the reason a user needs, which may sit above the last few lines."""
    found = [m.group(0) for line in lines
             if (m := re.search(r"\b[A-Z]\w*(Error|Exception): .+", line))]
    return found[-1].strip().rstrip('"}') if found else None


def _tail(text: list[str], lines: int = 5) -> str:
    if not text:
        return "it logged nothing"
    return "last log lines: " + " | ".join(text[-lines:])
