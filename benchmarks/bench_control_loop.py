"""Control-loop latency: from a ``deploy`` tag set in MLflow to the new version answering on
its local endpoint, for test-project, with the real parts (MLflow server, signed webhook,
reconciler, download, load beside the live version, smoke test, switch).

Measured for a first deployment (the endpoint starts) and for switches between two versions
of a serving endpoint (the common case), medians over repetitions.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchmarks.common import note
from mlops_control import local_server, local_training, names, procs
from mlops_control.control_centre import ControlCentre
from mlops_control.registry import RegistryClient
from mlops_control.settings import Settings

PROJECT = "test-project"
REPO = Path(__file__).resolve().parents[1]


def _answering(url: str) -> str | None:
    try:
        with urllib.request.urlopen(f"{url}/version", timeout=2) as response:
            return str(json.loads(response.read()).get("version"))
    except (OSError, ValueError):
        return None


def _until(condition: Any, timeout: float = 120.0) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if condition():
            return time.perf_counter() - started
        time.sleep(0.02)
    raise TimeoutError("the control centre did not converge")


def run(switches: int = 6) -> dict[str, Any]:
    state = Path(tempfile.mkdtemp(prefix="bench-control-"))
    settings = Settings(state_dir=state, projects_dir=REPO / "projects", tracking_uri=None,
                        env_manager="local", mlflow_port=procs.free_port(),
                        receiver_port=procs.free_port(),
                        endpoint_base_port=_free_block())
    server = local_server.LocalMLflow(settings)
    uri = server.start()
    centre = None
    try:
        client = RegistryClient(uri)
        versions = []
        for _ in range(2):
            result = local_training.run(settings, uri, local_training.LocalTrainingJob(
                project=PROJECT), quiet=True)
            versions.extend(result["versions"])
        # Promotion gate tags each new version deploy=staging; keep the measurement about
        # production only.
        for version in versions:
            client.delete_tag(PROJECT, version, names.TAG_DEPLOY)
        centre = ControlCentre(settings, uri, reconcile_interval_s=3600)
        centre.start()
        assert centre.wait_idle(120)
        url = centre.backend.url(PROJECT, "production")
        started = time.perf_counter()
        client.set_tag(PROJECT, versions[0], names.TAG_DEPLOY, "production")
        first = _until(lambda: _answering(url) == versions[0])
        note(f"control loop: first deployment answered after {first:.2f}s")
        assert centre.wait_idle(120)
        switch_times = []
        for i in range(switches):
            target = versions[(i + 1) % 2]
            started = time.perf_counter()
            client.set_tag(PROJECT, target, names.TAG_DEPLOY, "production")
            switch_times.append(_until(lambda t=target: _answering(url) == t))
            assert centre.wait_idle(120)
            note(f"control loop: switch {i + 1} to version {target} answered after "
                 f"{switch_times[-1]:.2f}s")
        del started
        return {"first_deployment_s": round(first, 3),
                "switch_s": [round(t, 3) for t in switch_times],
                "switch_median_s": round(statistics.median(switch_times), 3)}
    finally:
        if centre is not None:
            centre.stop()
        server.stop()


def _free_block(size: int = 20) -> int:
    import random

    for _ in range(200):
        base = random.randrange(20000, 32000)
        if not any(procs.port_in_use(base + i) for i in range(size)):
            return base
    raise RuntimeError("no free block of ports")


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
