"""Starting, tracking and stopping the background processes the control centre owns.

Each process runs in its own session, so that stopping it stops its children too (the MLflow
server forks workers), and its pid is written to a file so another command can stop it.
Nothing here ever signals a process it did not start: a pid file whose process has a
different command line is treated as stale.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


@dataclass
class Managed:
    """A background process with a pid file and a log file."""

    name: str
    pid_file: Path
    log_file: Path

    def start(self, argv: list[str], env: dict[str, str] | None = None,
              cwd: Path | None = None) -> subprocess.Popen[bytes]:
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_file, "ab")  # noqa: SIM115 - handed to the child
        try:
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                start_new_session=True,
            )
        finally:
            log.close()
        self.pid_file.write_text(f"{proc.pid}\n{_create_time(proc.pid)}\n")
        return proc

    def pid(self) -> int | None:
        """The pid if the recorded process is still the one we started, else None."""
        try:
            pid_text, created = self.pid_file.read_text().split()
            pid = int(pid_text)
        except (FileNotFoundError, ValueError):
            return None
        if not psutil.pid_exists(pid) or _create_time(pid) != created:
            return None
        with contextlib.suppress(psutil.Error):
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return None
        return pid

    def stop(self, timeout: float = 15.0) -> bool:
        """Stop the process group; True if something was running."""
        pid = self.pid()
        self.pid_file.unlink(missing_ok=True)
        if pid is None:
            return False
        stop_group(pid, timeout)
        return True


def stop_group(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM the process group led by ``pid``, then SIGKILL what is left after ``timeout``."""
    try:
        members = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    _, alive = psutil.wait_procs(members, timeout=timeout)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    psutil.wait_procs(alive, timeout=5)


def _create_time(pid: int) -> str:
    try:
        return f"{psutil.Process(pid).create_time():.2f}"
    except psutil.Error:
        return "gone"


def wait_http(url: str, timeout: float, alive: Callable[[], bool] | None = None,
              what: str = "server") -> None:
    """Poll ``url`` until it answers 200; fail early if ``alive()`` turns False."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if alive is not None and not alive():
            raise RuntimeError(f"the {what} exited before it became healthy")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            last = str(exc)
        time.sleep(0.1)
    raise TimeoutError(f"the {what} at {url} was not healthy after {timeout:.0f}s ({last})")
