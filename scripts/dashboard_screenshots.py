"""The README's pictures of the local dashboards, from a real session on this machine.

An MLflow server and the control centre in a throw-away state folder; test-project trained by
the shared training entrypoint and tagged ``deploy=production``; steady traffic for a few
minutes (every 40th request malformed, and the second half with four size features 40%
larger than in training); then both dashboards drawn by headless Chromium.

    .venv/bin/python scripts/dashboard_screenshots.py            # about 3 minutes
    .venv/bin/python scripts/dashboard_screenshots.py --seconds 60

Writes ``docs/images/local_metrics_dashboard.png`` and ``docs/images/local_stats_dashboard.png``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
import urllib.request
from pathlib import Path

from mlops_control import local_server, local_training, logs, names, procs
from mlops_control.control_centre import ControlCentre
from mlops_control.dashboards import screenshot
from mlops_control.registry import RegistryClient
from mlops_control.settings import Settings
from mlops_control.traffic import Traffic

REPO = Path(__file__).resolve().parents[1]
IMAGES = REPO / "docs" / "images"
PROJECT = "test-project"
DRIFTED = ("mean_radius", "mean_perimeter", "mean_area", "worst_radius")


def answering(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/version", timeout=2) as response:
            return bool(json.loads(response.read()).get("version"))
    except (OSError, ValueError):
        return False


def wait(condition, what: str, timeout: float = 180.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise SystemExit(f"timed out waiting for {what}")


def bundled_data():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("shots_data", REPO / "projects" / PROJECT /
                                                  "data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.bundled().drop(columns=["target"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=150.0, help="of traffic")
    args = parser.parse_args()
    logs.setup()
    with tempfile.TemporaryDirectory(prefix="mlops-shots-") as tmp:
        settings = Settings(state_dir=Path(tmp), projects_dir=REPO / "projects",
                            tracking_uri=None, env_manager="local",
                            mlflow_port=procs.free_port(), receiver_port=procs.free_port(),
                            endpoint_base_port=procs.free_port())
        server = local_server.LocalMLflow(settings)
        uri = server.start()
        centre = ControlCentre(settings, uri, stages=frozenset({"production"}),
                               reconcile_interval_s=3600)
        centre.start()
        try:
            result = local_training.run(settings, uri,
                                        local_training.LocalTrainingJob(project=PROJECT),
                                        quiet=True)
            (version,) = result["versions"]
            RegistryClient(uri).set_tag(PROJECT, version, names.TAG_DEPLOY, "production")
            url = centre.backend.url(PROJECT, "production")
            wait(lambda: answering(url), "production to answer")
            traffic = Traffic(url, bundled_data(), per_second=25, rows=4, seed=11)
            traffic.bad_every = 40
            traffic.start()
            time.sleep(args.seconds / 2)
            traffic.shift = dict.fromkeys(DRIFTED, 1.4)
            time.sleep(args.seconds / 2)
            traffic.stop()
            time.sleep(6)  # the workers' last flush
            print(f"traffic: {traffic.sent} requests, statuses {dict(traffic.statuses)}")
            base = f"http://127.0.0.1:{centre.receiver.port}/dashboards/{PROJECT}"
            for which, height in (("metrics", 1570), ("stats", 3150)):
                target = IMAGES / f"local_{which}_dashboard.png"
                screenshot.screenshot(f"{base}/{which}", target, width=1400, height=height)
                print(f"wrote {target.relative_to(REPO)}")
        finally:
            centre.stop()
            server.stop()


if __name__ == "__main__":
    main()
