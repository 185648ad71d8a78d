"""The control centre SIGKILLed in the middle of a deployment, then started again: the
endpoint converges to what the registry asks for, no candidate or unrecorded endpoint
process is left running, no version is left 'deploying', and no tag says a version serves
when it does not.

The control centre runs in its own process (tests/reliability/centre_process.py) so that it
can be killed; it kills itself at a chosen point, which makes each crash land exactly where
the test means it to."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from mlops_control import names, procs
from tests.live import free_block, wait_until
from tests.reliability import figures
from tests.reliability.conftest import Registered, version_at

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Site:
    """Where a control centre process keeps its state and listens, kept across restarts."""

    state: Path
    receiver_port: int
    endpoint_base: int
    url: str

    @property
    def production(self) -> str:
        return f"http://127.0.0.1:{self.endpoint_base}"


class CentreProcess:
    def __init__(self, site: Site, fault: str = "", log_name: str = "centre.log") -> None:
        self.site = site
        self.log = site.state / log_name
        env = {**os.environ, "PYTHONPATH": str(REPO),
               names.ENV_STATE_DIR: str(site.state),
               "MLOPS_RECEIVER_PORT": str(site.receiver_port),
               "MLOPS_ENDPOINT_PORT": str(site.endpoint_base),
               "RELIABILITY_FAULT": fault}
        env.pop("MLFLOW_TRACKING_URI", None)
        site.state.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "tests.reliability.centre_process", site.url],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO,
                start_new_session=True)
        wait_until(lambda: b"READY" in self.log.read_bytes() or self.proc.poll() is not None,
                   "the control centre to start", timeout=120)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_killed(self, timeout: float = 180.0) -> int:
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                procs.stop_group(self.proc.pid, timeout=5)


def serving_processes(state: Path) -> dict[str, list[int]]:
    """Serving supervisors started for this state folder, by endpoint (or candidate) name."""
    roots = str(state / "run" / "roots") + os.sep
    found: dict[str, list[int]] = {}
    for proc in psutil.process_iter(["pid", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            cmdline = proc.info["cmdline"] or []
            if "mlops_control.container" not in cmdline:
                continue
            root = proc.environ().get(names.ENV_ML_ROOT, "")
            if root.startswith(roots):
                found.setdefault(root[len(roots):], []).append(proc.info["pid"])
    return found


def stop_leftovers(state: Path) -> None:
    """End the serving processes this test's control centres started (by pid, as groups)."""
    for pids in serving_processes(state).values():
        for pid in pids:
            procs.stop_group(pid, timeout=10)


@pytest.fixture
def site(tmp_path: Path, rel_mlflow: Any) -> Iterator[Site]:
    place = Site(tmp_path / "state", procs.free_port(), free_block(), rel_mlflow.url)
    yield place
    stop_leftovers(place.state)


def deploying(model: Registered) -> list[str]:
    return [v.version for v in model.client.model_versions(model.name)
            if v.tags.get(names.TAG_STATUS) == names.Status.DEPLOYING]


def converged(model: Registered, site: Site, wanted: str, others: list[str]) -> bool:
    if version_at(site.production) != wanted:
        return False
    tags = model.tags(wanted)
    if tags.get(names.TAG_STATUS) != "in_service" or tags.get("deploy") != "production":
        return False
    for other in others:
        theirs = model.tags(other)
        if theirs.get(names.TAG_STATUS) in ("in_service", "deploying") or "deploy" in theirs:
            return False
    return True


FAULTS = ["first-start", "swap", "recorded",
          pytest.param("candidate", marks=pytest.mark.soak),
          pytest.param("half-tagged", marks=pytest.mark.soak)]


@pytest.mark.parametrize("fault", FAULTS)
def test_a_control_centre_killed_mid_deployment_converges_after_restart(model, site, fault):
    v1 = model.new_version(model.sources.zero)
    model.tag(v1, "deploy", "production")
    started = time.monotonic()
    centre = CentreProcess(site, fault=fault)
    try:
        if fault == "first-start":
            wanted, others = v1, []
        else:
            wait_until(model.has_status(v1, "in_service"), "v1 in service")
            v2 = model.new_version(model.sources.one)
            model.tag(v2, "deploy", "production")
            wanted, others = v2, [v1]
        code = centre.wait_killed()
        assert code == -signal.SIGKILL and f"FAULT {fault}" in centre.text(), centre.text()[-2000:]
    finally:
        centre.stop()
    left = serving_processes(site.state)
    if fault == "candidate":
        assert any(name.endswith("-candidate") for name in left), left  # the crash left one

    restarted = CentreProcess(site, log_name="restarted.log")
    try:
        wait_until(lambda: converged(model, site, wanted, others),
                   f"version {wanted} to serve with truthful tags", timeout=180)
        assert deploying(model) == []
        after = serving_processes(site.state)
        endpoint = f"{model.name}-production"
        assert list(after) == [endpoint] and len(after[endpoint]) == 1, after
        assert "rolled back" not in model.tags(wanted).get(names.TAG_MESSAGE, "")
        took = time.monotonic() - started
    finally:
        restarted.stop()
    figures.add("faults.crash", f"survived_{fault}")
    figures.record("faults.crash", **{f"seconds_{fault}": round(took, 1),
                                      f"left_behind_{fault}": sorted(left)})
