"""Local training: the shared image's ``train`` command as a subprocess, under a job folder
laid out exactly as SageMaker lays out ``/opt/ml``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_control import contract, env_manager, names
from mlops_control.errors import ControlCentreError
from mlops_control.settings import Settings
from mlops_control.sm_layout import MLRoot

DEFAULT_TIMEOUT_S = 3600.0


class TrainingFailed(ControlCentreError):
    def __init__(self, project: str, reason: str, job_dir: Path) -> None:
        self.reason = reason
        self.job_dir = job_dir
        super().__init__(f"training {project} failed: {reason} (job folder: {job_dir})")


@dataclass(frozen=True)
class LocalTrainingJob:
    project: str
    register: bool = True
    data_location: str | None = None
    data_version: str | None = None
    params: dict[str, Any] | None = None
    trigger: str = names.Trigger.MANUAL
    timeout_s: float = DEFAULT_TIMEOUT_S


def code_revision(repo: Path) -> str:
    """``<commit>`` or ``<commit>-dirty``: what the lineage tag records."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=repo,
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=repo,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def run(settings: Settings, tracking_uri: str, job: LocalTrainingJob,
        quiet: bool = False) -> dict[str, Any]:
    """Run one training job; return the job's result (run id, versions, metrics)."""
    project_dir = settings.projects_dir / job.project
    contract.check_name(job.project)
    if not project_dir.is_dir():
        raise ControlCentreError(f"no project {job.project!r} in {settings.projects_dir}")
    job_name = f"{job.project}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid() % 10000:04d}"
    job_dir = settings.state_dir / "jobs" / job_name
    ml_root = MLRoot(job_dir)
    channel = None
    if job.data_location and "://" not in job.data_location:
        channel = Path(job.data_location)
        if not channel.exists():
            raise ControlCentreError(f"no training data at {job.data_location}")
    hyper: dict[str, Any] = {
        "project": job.project,
        "trigger": str(job.trigger),
        "training_job": job_name,
        "code_revision": code_revision(settings.projects_dir),
        **(job.params or {}),
    }
    if job.data_location:
        hyper["data_location"] = job.data_location
    if job.data_version:
        hyper["data_version"] = job.data_version
    ml_root.prepare_training(hyper, channel_source=channel)

    from mlops_control import mlproject

    python = env_manager.python_for(mlproject.load(project_dir), settings.env_manager,
                                    settings.state_dir / "envs")
    env = dict(os.environ)
    env.update({
        names.ENV_ML_ROOT: str(job_dir),
        names.ENV_PROJECTS_DIR: str(settings.projects_dir),
        names.ENV_TRACKING_URI: tracking_uri,
        names.ENV_TEST_ENV: "False" if job.register else "True",
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")) if p),
    })
    if job.data_location and "://" in job.data_location:
        env[names.ENV_DATA_LOCATION] = job.data_location
    else:
        env.pop(names.ENV_DATA_LOCATION, None)
    log_file = job_dir / "output" / "train.log"
    with open(log_file, "wb") as log:
        proc = subprocess.Popen([*python, "-m", "mlops_control.container", "train"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True)
        assert proc.stdout is not None
        deadline = time.monotonic() + job.timeout_s
        try:
            for line in _lines(proc, deadline):
                log.write(line)
                if not quiet and _worth_showing(line):
                    sys.stderr.write(line.decode(errors="replace"))
                    sys.stderr.flush()
        except TimeoutError:
            from mlops_control.procs import stop_group

            stop_group(proc.pid, timeout=5)
            ml_root.write_failure(f"timed out after {job.timeout_s:.0f}s")
        proc.wait()
    if proc.returncode != 0 or ml_root.failure_file.exists():
        reason = (ml_root.failure_file.read_text().strip() if ml_root.failure_file.exists()
                  else f"the training process exited with status {proc.returncode}")
        raise TrainingFailed(job.project, reason, job_dir)
    result: dict[str, Any] = json.loads((ml_root.output_dir / "result.json").read_text())
    result["job_dir"] = str(job_dir)
    return result


def _lines(proc: subprocess.Popen[bytes], deadline: float) -> Iterator[bytes]:
    import selectors

    assert proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    buffer = b""
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        if not selector.select(timeout=min(remaining, 1.0)):
            continue
        chunk = os.read(proc.stdout.fileno(), 65536)
        if not chunk:
            if buffer:
                yield buffer
            return
        buffer += chunk
        *complete, buffer = buffer.split(b"\n")
        for line in complete:
            yield line + b"\n"


def _worth_showing(line: bytes) -> bool:
    # MLflow's own chatter (database migrations, pickle warnings) stays in the log file.
    return line.startswith((b"[train]", b"trained ", b"Traceback", b"  ")) or b"Error" in line
