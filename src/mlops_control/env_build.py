"""Building a Python environment the way a user can follow: each step's output streamed line by
line as it happens (a pip install takes minutes), the step's own error lines as the failure,
and one build at a time per environment (a file lock, for threads and processes alike).

Used for the environments models are served in (model_env.py) and projects train in
(env_manager.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from mlops_control.errors import ControlCentreError

Progress = Callable[[str], None]
READY = ".ready"
PIP_INSTALL = ("-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off")
"""pip's install with line-per-step output (its progress bars redraw one line, unreadable in a
log) and without the version nag."""


class EnvironmentFailed(ControlCentreError):
    """An environment could not be built; the message holds the failing tool's own reason."""


def to_stderr(line: str) -> None:
    print(f"[env] {line}", file=sys.stderr, flush=True)


def run_streamed(argv: list[str], progress: Progress, what: str) -> None:
    """Run a build step, streaming its output lines; fail with its own error lines."""
    lines: list[str] = []
    # The control centre's own virtualenv must not leak into the one being built.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          env=env) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            if line:
                lines.append(line)
                progress(f"  {line}")
    if proc.returncode != 0:
        errors = [line for line in lines if line.lstrip().startswith("ERROR")] or lines[-3:]
        raise EnvironmentFailed(f"{what} failed: {' | '.join(e.strip() for e in errors)}")


@contextlib.contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_file, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def building(env_dir: Path) -> Iterator[bool]:
    """Hold the environment's lock; yield whether it still needs building. A build that
    fails (or is interrupted) leaves nothing behind, so the next attempt starts clean; one
    that succeeds is marked ready for every later caller."""
    with locked(env_dir.with_name(env_dir.name + ".lock")):
        if (env_dir / READY).exists():  # built by whoever held the lock before us
            yield False
            return
        shutil.rmtree(env_dir, ignore_errors=True)  # a build that died half-way
        try:
            yield True
        except BaseException:
            shutil.rmtree(env_dir, ignore_errors=True)
            raise
        (env_dir / READY).touch()
