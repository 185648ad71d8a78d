"""The scoring server: worker processes sharing one listening socket, under a supervisor.

``run()`` creates the socket, starts one worker per core (:mod:`serving.worker`), and then
only supervises: it restarts a worker that dies, with the model that is live at that moment,
and answers the control socket. It never loads a model itself, so it stays small, and the
workers never see a request half-handled by another process.

The control socket (a unix socket, mode 0600) takes one JSON object per line and answers one:

    {"action": "swap", "model_dir": "/path", "name": "test-project", "version": "3"}
        -> {"ok": true, "name": ..., "version": ..., "pids": [...]}
        or {"ok": false, "error": "..."}
    {"action": "status"}
        -> {"ok": true, "name": ..., "version": ..., "model_dir": ..., "pids": [...],
            "workers": [{"pid": ..., "name": ..., "version": ...}, ...]}

A swap has two phases: every worker loads the new model beside the live one (and keeps
answering with the live one); only when all have loaded it do they all switch. If any fails,
every worker keeps the old model and the answer says why.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_control import logs, names
from mlops_control.errors import ControlCentreError
from mlops_control.serving.config import ServingConfig, default_workers

logger = logging.getLogger("mlops_control.serving")

START_TIMEOUT_S = 300.0
"""A worker loads and warms its model within this time, or the start fails."""
SWAP_TIMEOUT_S = 300.0
RESTART_BACKOFF_S = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0)
"""Delays before restarting a worker that keeps dying soon after it started."""
STABLE_AFTER_S = 30.0


@dataclass(frozen=True)
class ModelRef:
    model_dir: Path
    name: str | None = None
    version: str | None = None

    def argv(self) -> list[str]:
        args = ["--model-dir", str(self.model_dir)]
        if self.name:
            args += ["--name", self.name]
        if self.version:
            args += ["--version", self.version]
        return args

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "model_dir": str(self.model_dir)}


class WorkerGone(Exception):
    pass


class WorkerHandle:
    """The supervisor's side of one worker: its process and its message channel."""

    def __init__(self, index: int, proc: asyncio.subprocess.Process,
                 reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 model: ModelRef) -> None:
        self.index = index
        self.proc = proc
        self.writer = writer
        self.model = model
        self.started_at = time.monotonic()
        self.started: asyncio.Future[dict[str, Any]] = \
            asyncio.get_running_loop().create_future()
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.reading = asyncio.create_task(self._read(reader))

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.get("op") in ("ready", "failed"):
                if not self.started.done():
                    self.started.set_result(message)
            else:
                self.inbox.put_nowait(message)
        if not self.started.done():
            self.started.set_result({"op": "failed", "error": "the worker exited while "
                                     "loading its model (see its log above)"})
        self.inbox.put_nowait({"op": "eof"})

    async def send(self, message: dict[str, Any]) -> None:
        try:
            self.writer.write(json.dumps(message).encode() + b"\n")
            await self.writer.drain()
        except (ConnectionError, RuntimeError) as exc:
            raise WorkerGone(f"worker {self.pid} is gone") from exc

    async def expect(self, op: str, swap_id: int, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"worker {self.pid} did not answer {op} within {timeout:.0f}s")
            try:
                message = await asyncio.wait_for(self.inbox.get(), remaining)
            except TimeoutError:
                continue
            if message.get("op") == "eof":
                self.inbox.put_nowait(message)  # later waiters must see it too
                raise WorkerGone(f"worker {self.pid} exited")
            if message.get("op") == op and message.get("id") == swap_id:
                return message


class Supervisor:
    def __init__(self, listen: socket.socket, n_workers: int, model: ModelRef,
                 control_socket: Path | None, config: ServingConfig) -> None:
        self.listen = listen
        self.n_workers = n_workers
        self.current = model
        self.control_socket = control_socket
        self.config = config
        self.workers: list[WorkerHandle] = []
        self.stopping = False
        self._stop = asyncio.Event()
        self._swap_lock = asyncio.Lock()
        self._swap_id = 0
        self._failures = [0] * n_workers
        self._tasks: set[asyncio.Task[Any]] = set()

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop.set)
        control = None
        try:
            # The control socket exists from the start, so whoever started the server can ask
            # for its status as soon as it answers /ping (one worker may be up before others).
            if self.control_socket is not None:
                control = await self._serve_control(self.control_socket)
            self.workers = list(await asyncio.gather(
                *(self._spawn(i, self.current) for i in range(self.n_workers))))
            if not await self._await_started(self.workers):
                return  # stopped while the model was loading
            host, port = self.listen.getsockname()[:2]
            logger.info("serving", extra={
                "url": f"http://{host}:{port}", "workers": self.n_workers,
                "model": f"{self.current.name}/{self.current.version}",
                "pids": [w.pid for w in self.workers]})
            await self._stop.wait()
        finally:
            await self._shutdown(control)

    async def _await_started(self, workers: list[WorkerHandle]) -> bool:
        """True once every worker serves; False if a stop came first."""
        started = asyncio.ensure_future(asyncio.gather(*(w.started for w in workers)))
        stop = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({started, stop}, timeout=START_TIMEOUT_S,
                           return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not started.done():
            started.cancel()
            if self._stop.is_set():
                return False
            raise ControlCentreError(f"the model in {self.current.model_dir} was not loaded "
                                     f"within {START_TIMEOUT_S:.0f}s")
        done = started.result()
        errors = sorted({m.get("error", "unknown error") for m in done if m["op"] == "failed"})
        if errors:
            raise ControlCentreError(f"the model in {self.current.model_dir} could not be "
                                     f"served: {'; '.join(errors)}")
        return True

    # --- workers ----------------------------------------------------------------------------
    async def _spawn(self, index: int, model: ModelRef) -> WorkerHandle:
        ours, theirs = socket.socketpair()
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "mlops_control.serving.worker",
                "--listen-fd", str(self.listen.fileno()), "--channel-fd", str(theirs.fileno()),
                *model.argv(), pass_fds=(self.listen.fileno(), theirs.fileno()),
                stdin=asyncio.subprocess.DEVNULL)
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        handle = WorkerHandle(index, proc, reader, writer, model)
        self._keep(asyncio.create_task(self._watch(handle)))
        return handle

    async def _watch(self, handle: WorkerHandle) -> None:
        code = await handle.proc.wait()
        if self.stopping or handle not in self.workers:
            return  # shutting down, or a worker that never finished starting
        lived = time.monotonic() - handle.started_at
        self._failures[handle.index] = 0 if lived > STABLE_AFTER_S \
            else self._failures[handle.index] + 1
        delay = RESTART_BACKOFF_S[min(self._failures[handle.index], len(RESTART_BACKOFF_S) - 1)]
        logger.warning("worker exited; restarting it", extra={
            "pid": handle.pid, "code": code, "lived_s": round(lived, 1), "delay_s": delay,
            "model": f"{self.current.name}/{self.current.version}"})
        await asyncio.sleep(delay)
        if self.stopping:
            return
        replacement = await self._spawn(handle.index, self.current)
        self.workers[handle.index] = replacement
        started = await replacement.started
        if started["op"] == "ready":
            logger.info("worker restarted", extra={"pid": replacement.pid})
        # A failed replacement exits by itself; its own watch restarts it after a pause.

    def _keep(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- swap -------------------------------------------------------------------------------
    async def swap(self, target: ModelRef) -> dict[str, Any]:
        if not (target.model_dir / "MLmodel").is_file():
            return {"ok": False, "error": f"{target.model_dir} holds no MLmodel file"}
        async with self._swap_lock:
            self._swap_id += 1
            swap_id = self._swap_id
            while len(self.workers) < self.n_workers:  # still starting
                await asyncio.sleep(0.05)
            workers = list(self.workers)
            prepare = {"op": "prepare", "id": swap_id, **target.describe()}
            results = await asyncio.gather(
                *(self._ask(w, prepare, "prepared", SWAP_TIMEOUT_S) for w in workers),
                return_exceptions=True)
            errors = [_reason(w, r) for w, r in zip(workers, results, strict=True)
                      if isinstance(r, BaseException) or not r.get("ok")]
            if errors:
                for worker in workers:
                    with contextlib.suppress(WorkerGone):
                        await worker.send({"op": "abort", "id": swap_id})
                logger.warning("swap refused", extra={"model": _label(target),
                                                      "errors": errors})
                return {"ok": False, "error": "; ".join(sorted(set(errors))),
                        "name": self.current.name, "version": self.current.version}
            # From here on a restarted worker starts with the new model.
            self.current = target
            acks = await asyncio.gather(
                *(self._ask(w, {"op": "commit", "id": swap_id}, "committed", 30.0)
                  for w in workers), return_exceptions=True)
            for worker, ack in zip(workers, acks, strict=True):
                if not isinstance(ack, BaseException):
                    worker.model = target
            self._replace_stragglers(target)
            logger.info("model swapped", extra={"model": _label(target),
                                                "pids": [w.pid for w in self.workers]})
            return {"ok": True, "name": target.name, "version": target.version,
                    "pids": [w.pid for w in self.workers]}

    def _replace_stragglers(self, target: ModelRef) -> None:
        """A worker restarted between the two phases came up with the old model: stop it
        gracefully, and its restart brings the new one."""
        for worker in self.workers:
            if worker.model != target and worker.proc.returncode is None:
                logger.warning("worker missed the swap; replacing it", extra={"pid": worker.pid})
                worker.proc.send_signal(signal.SIGTERM)

    @staticmethod
    async def _ask(worker: WorkerHandle, message: dict[str, Any], answer: str,
                   timeout: float) -> dict[str, Any]:
        await worker.send(message)
        return await worker.expect(answer, message["id"], timeout)

    def status(self) -> dict[str, Any]:
        return {"ok": True, **self.current.describe(),
                "pids": [w.pid for w in self.workers],
                "workers": [{"pid": w.pid, "name": w.model.name, "version": w.model.version,
                             "ready": w.started.done() and w.started.result()["op"] == "ready"}
                            for w in self.workers]}

    # --- control socket ---------------------------------------------------------------------
    async def _serve_control(self, path: Path) -> asyncio.AbstractServer:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if path.exists():
            if _answers(path):
                raise ControlCentreError(f"control socket {path} is in use by another server")
            path.unlink()
        previous = os.umask(0o177)  # the socket is created 0600: only its owner may swap models
        try:
            server = await asyncio.start_unix_server(self._control_client, path=str(path))
        finally:
            os.umask(previous)
        os.chmod(path, 0o600)
        return server

    async def _control_client(self, reader: asyncio.StreamReader,
                              writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                answer = await self._control(line)
                writer.write(json.dumps(answer).encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _control(self, line: bytes) -> dict[str, Any]:
        try:
            message = json.loads(line)
            if not isinstance(message, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            return {"ok": False, "error": f"not a JSON object: {exc}"}
        action = message.get("action")
        if action == "status":
            return self.status()
        if action == "swap":
            model_dir = message.get("model_dir")
            if not isinstance(model_dir, str) or not model_dir:
                return {"ok": False, "error": "swap needs model_dir"}
            name, version = message.get("name"), message.get("version")
            return await self.swap(ModelRef(Path(model_dir).resolve(),
                                            None if name is None else str(name),
                                            None if version is None else str(version)))
        return {"ok": False, "error": f"unknown action {action!r}: use swap or status"}

    # --- stop -------------------------------------------------------------------------------
    async def _shutdown(self, control: asyncio.AbstractServer | None) -> None:
        self.stopping = True
        if control is not None:
            control.close()
            if self.control_socket is not None:
                self.control_socket.unlink(missing_ok=True)
        running = [w for w in self.workers if w.proc.returncode is None]
        for worker in running:
            with contextlib.suppress(ProcessLookupError):
                worker.proc.send_signal(signal.SIGTERM)
        waits = [asyncio.create_task(w.proc.wait()) for w in running]
        if waits:
            _, late = await asyncio.wait(waits, timeout=self.config.shutdown_timeout_s + 5)
            for worker in running:
                if worker.proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        worker.proc.kill()
            if late:
                await asyncio.wait(late, timeout=5)
        for task in list(self._tasks):
            task.cancel()
        logger.info("server stopped")


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True


def _reason(worker: WorkerHandle, result: Any) -> str:
    if isinstance(result, BaseException):
        return f"worker {worker.pid}: {result}"
    return f"worker {worker.pid}: {result.get('error', 'refused')}"


def _label(model: ModelRef) -> str:
    return f"{model.name}/{model.version}"


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ControlCentreError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(1024)
    return sock


def run(model_dir: Path, host: str = "127.0.0.1", port: int = 5050,
        workers: int | None = None, control_socket: Path | None = None, *,
        name: str | None = None, version: str | None = None) -> None:
    """Serve the model in ``model_dir`` until SIGTERM or SIGINT, then finish the requests in
    flight and return. ``name``/``version`` default to ``MLOPS_MODEL_NAME`` and
    ``MLOPS_MODEL_VERSION``."""
    logs.setup()
    model_dir = Path(model_dir)
    if not (model_dir / "MLmodel").is_file():
        raise ControlCentreError(f"{model_dir} is not an MLflow model folder (no MLmodel file)")
    model = ModelRef(model_dir.resolve(),
                     name or os.environ.get(names.ENV_MODEL_NAME) or None,
                     version or os.environ.get(names.ENV_MODEL_VERSION) or None)
    try:
        config = ServingConfig.from_env()
    except ValueError as exc:
        raise ControlCentreError(str(exc)) from None
    sock = listen(host, port)
    try:
        supervisor = Supervisor(sock, workers or default_workers(), model,
                                Path(control_socket) if control_socket else None, config)
        asyncio.run(supervisor.main())
    finally:
        sock.close()
