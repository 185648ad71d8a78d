"""Monitoring for real, as a user meets it: the training job stores the training statistics;
a version deployed by the control centre records its traffic into the metrics store; the
control centre's dashboard pages show it, drawn by headless Chromium with plots full of data
points; and a restart of the serving process loses nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlops_control import names, procs
from mlops_control.control_centre import ControlCentre
from mlops_control.dashboards import screenshot, svg
from mlops_control.monitoring import stats
from mlops_control.monitoring.store import Interval, MetricsStore, path_in
from mlops_control.traffic import Traffic
from tests.conftest import PROJECTS, make_settings
from tests.live import wait_until

pytestmark = pytest.mark.integration


def project_data() -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("mon_tp_data", PROJECTS / "test-project" /
                                                  "data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.bundled().drop(columns=["target"])


def test_the_training_job_stores_the_training_statistics_with_the_run(mlflow_server, trained):
    document = json.loads(mlflow_server.client.run_artifact(trained["run_id"],
                                                            names.TRAINING_STATS_ARTIFACT))
    data = project_data()
    assert document["source"] == "captured"  # taken from train.py's own get_data() call
    assert document["rows"] == len(data) == 569
    assert document["feature_order"] == list(data.columns)
    radius = document["features"]["mean_radius"]
    assert radius["mean"] == pytest.approx(data["mean_radius"].mean())
    assert radius["std"] == pytest.approx(data["mean_radius"].std(ddof=0))
    assert sum(radius["counts"]) == 569 and len(radius["counts"]) == len(radius["edges"]) + 1
    assert document["target"]["kind"] == "numeric"


@dataclass
class Served:
    centre: ControlCentre
    project: str
    endpoint: str
    url: str
    store_path: Path
    tmp: Path

    def store(self) -> MetricsStore:
        return MetricsStore(self.store_path)

    def intervals(self) -> list[Interval]:
        store = self.store()
        try:
            return store.intervals([self.endpoint], 0.0)
        finally:
            store.close()

    def totals(self) -> dict[str, int]:
        found = self.intervals()
        return {k: sum(getattr(i, k) for i in found)
                for k in ("requests", "errors_4xx", "errors_5xx", "rows")}

    def page(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.centre.receiver.port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def answering(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=2):
                return True
        except OSError:
            return False


def post(url: str, body: dict[str, Any]) -> int:
    request = urllib.request.Request(f"{url}/invocations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.fixture(scope="module")
def served(mlflow_server, trained, tmp_path_factory) -> Iterator[Served]:
    """A copy of test-project v1 (same run, so the same training statistics) deployed to
    production by a real control centre whose endpoints flush metrics every second."""
    import mlflow

    from tests.integration.test_control_centre import free_block

    tmp = tmp_path_factory.mktemp("monitoring")
    settings = make_settings(tmp / "state", endpoint_base_port=free_block())
    previous = os.environ.get(names.ENV_METRICS_FLUSH_S)
    os.environ[names.ENV_METRICS_FLUSH_S] = "1"
    centre = ControlCentre(settings, mlflow_server.url, stages=frozenset({"production"}),
                           reconcile_interval_s=3600, watchdog_interval_s=1.0,
                           serving_workers=2, receiver_port=0)
    centre.start()
    try:
        project = f"mon-{uuid.uuid4().hex[:8]}"
        source = mlflow_server.client.get_model_version("test-project", trained["versions"][0])
        client = mlflow.MlflowClient(mlflow_server.url)
        client.create_registered_model(project)
        model_id = source.source.removeprefix("models:/") \
            if source.source.startswith("models:/m-") else None
        version = client.create_model_version(project, source.source, run_id=source.run_id,
                                              model_id=model_id).version
        mlflow_server.client.set_tag(project, str(version), names.TAG_DEPLOY, "production")
        endpoint = names.endpoint_name(project, "production")
        result = Served(centre, project, endpoint, centre.backend.url(project, "production"),
                        path_in(settings.state_dir), tmp)
        wait_until(lambda: mlflow_server.client.get_model_version(project, "1").tags.get(
            names.TAG_STATUS) == names.Status.IN_SERVICE and result.answering(),
            "the copy serving production")
        yield result
    finally:
        centre.stop()
        if previous is None:
            os.environ.pop(names.ENV_METRICS_FLUSH_S, None)
        else:
            os.environ[names.ENV_METRICS_FLUSH_S] = previous


@pytest.fixture(scope="module")
def traffic(served) -> dict[str, Any]:
    """What was sent, in three phases: a known slice, steady traffic with some bad requests
    and a drifted part, then (after a restart of the serving process) the known slice again.
    The deployment's own smoke test came before, so counts are taken from there on."""
    data = project_data()
    wait_until(lambda: served.totals()["requests"] >= 1, "the smoke test in the store")
    time.sleep(1.5)  # one more flush: nothing of the smoke test left in memory
    start = served.totals()
    first = len(served.intervals())
    known = data.head(40)
    body = {"dataframe_split": {"columns": list(known.columns),
                                "data": known.values.tolist()}}
    assert all(post(served.url, body) == 200 for _ in range(25))
    wait_until(lambda: served.totals()["requests"] == start["requests"] + 25,
               "the known slice in the store")
    after_known = served.intervals()[first:]

    steady = Traffic(served.url, data, per_second=40, rows=4, seed=1)
    steady.bad_every = 10
    steady.start()
    time.sleep(3)
    steady.shift = {"mean_radius": 1.5}
    time.sleep(3)
    steady.stop()
    sent = start["requests"] + 25 + steady.sent
    wait_until(lambda: served.totals()["requests"] == sent, "the steady traffic in the store")
    before_restart = served.intervals()

    manager = procs.Managed(served.endpoint, served.centre.settings.run_dir / "endpoints" /
                            f"{served.endpoint}.pid", served.tmp / "unused.log")
    old_pid = manager.pid()
    assert old_pid is not None
    os.kill(old_pid, signal.SIGTERM)
    wait_until(lambda: manager.pid() not in (None, old_pid) and served.answering(),
               "the endpoint restored by the control centre's watchdog")
    # The restored endpoint is smoke-tested once, like any deployment.
    sent += 1
    wait_until(lambda: served.totals()["requests"] == sent, "the restored endpoint's smoke test")
    assert all(post(served.url, body) == 200 for _ in range(10))
    sent += 10
    wait_until(lambda: served.totals()["requests"] == sent, "traffic after the restart")
    return {"known": known, "after_known": after_known, "steady": steady, "sent": sent,
            "before_restart": before_restart, "start": start}


def test_the_store_holds_every_request_error_and_row_sent(served, traffic):
    steady, start = traffic["steady"], traffic["start"]
    totals = served.totals()
    assert totals["requests"] == traffic["sent"]
    assert totals["errors_4xx"] - start["errors_4xx"] == steady.statuses[400] > 0
    assert totals["errors_5xx"] == 0
    # 35 known slices of 40 rows, the steady traffic's 4-row requests, and the restored
    # endpoint's smoke test (the 40-row test slice).
    assert totals["rows"] - start["rows"] == 35 * 40 + steady.statuses[200] * 4 + 40
    latencies = sum(sum(i.latency.values()) for i in served.intervals())
    assert latencies == traffic["sent"]


def test_input_statistics_are_those_of_the_rows_sent(served, traffic):
    from mlops_control.monitoring.stats import Moments

    merged = Moments()
    for interval in traffic["after_known"]:
        raw = interval.data.get("features", {}).get("mean_radius")
        if raw:
            merged = merged.merge(Moments.from_dict(raw))
    known = traffic["known"]["mean_radius"]
    assert merged.count == 25 * 40
    assert merged.mean == pytest.approx(known.mean())
    assert merged.std == pytest.approx(known.std(ddof=0))


def test_drift_is_measured_against_the_versions_training_statistics(served, traffic):
    from mlops_control.monitoring.series import recorded

    store = served.store()
    try:
        # The observer fetched them from MLflow (the copy shares test-project v1's run).
        assert store.training_stats(served.project, "1")["rows"] == 569
        # The steady traffic only: from the known slice to the restart. The bounds are
        # inclusive, and the known slice's last interval ended exactly at the first one: it
        # (40 rows sent 25 times) once made up part of this window and pushed an unshifted
        # feature's PSI over 0.1.
        view = recorded(store, served.project, served.endpoint,
                        traffic["after_known"][-1].ended + 1e-3,
                        traffic["before_restart"][-1].ended)
    finally:
        store.close()
    assert sum(i.requests for i in view.intervals) == traffic["steady"].sent
    assert view.window_drift("mean_radius") > stats.PSI_MAJOR  # 1.5 times as large, half the time
    assert view.window_drift("mean_texture") < stats.PSI_MODERATE


def test_a_restart_of_the_serving_process_keeps_what_was_recorded(served, traffic):
    before = traffic["before_restart"]
    now = served.intervals()
    assert now[:len(before)] == before
    old_pids = {i.pid for i in before}
    later = now[len(before):]
    # The stopped workers wrote their last, idle interval; the new ones everything since: the
    # restored endpoint's smoke test, then the ten requests sent after the restart.
    assert sum(i.requests for i in later if i.pid in old_pids) == 0
    assert sum(i.requests for i in later if i.pid not in old_pids) == 1 + 10


def _cards(page: str) -> dict[str, str]:
    cards = {}
    for chunk in page.split('<div class="card">')[1:]:
        title = re.search(r"<h3>(.*?)(<span|</h3>)", chunk)
        assert title
        cards[title.group(1).strip()] = chunk
    return cards


def test_the_control_centre_serves_both_dashboards_with_data_points(served, traffic):
    status, page = served.page(f"/dashboards/{served.project}")
    assert status == 200
    assert f"{served.project}_metrics" in page and f"{served.project}_stats" in page
    cards = _cards(page)
    for title in ("Requests", "Errors (4xx, 5xx)", "Model latency", "CPU utilisation",
                  "Memory and disk utilisation", "Process memory (local only)",
                  "Predicted rows", "Prediction distribution",
                  "Drift per feature (PSI against the training data)",
                  "Share missing per feature", "mean_radius", "worst_fractal_dimension"):
        assert cards[title].count('class="point"') >= 3, title
    assert "no data in this window" not in cards["Requests"]
    assert "SageMaker only" in cards["Overhead latency"]
    drift_bars = cards["Drift per feature over the window (local only)"]
    assert drift_bars.count('class="bar"') == 30
    status, index = served.page("/dashboards/")
    assert status == 200 and f'href="/dashboards/{served.project}"' in index
    assert served.page("/dashboards/no-such/thing/here")[0] == 404


# The vivid series colours (the palette's grey is also the colour of text).
PLOT_COLORS = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in svg.PALETTE
                        if c != "#4b5563"])


def plotted_pixels(png: Path) -> int:
    """Pixels drawn in one of the series colours (lines, points, bars, legend swatches)."""
    from PIL import Image

    pixels = np.asarray(Image.open(png).convert("RGB")).astype(int)
    near = np.abs(pixels[:, :, None, :] - PLOT_COLORS[None, None, :, :]).sum(axis=3) < 40
    return int(near.any(axis=2).sum())


def test_chromium_draws_plots_full_of_data(served, traffic, tmp_path):
    base = f"http://127.0.0.1:{served.centre.receiver.port}/dashboards"
    metrics = screenshot.screenshot(f"{base}/{served.project}/metrics",
                                    tmp_path / "metrics.png", height=1700)
    stats_page = screenshot.screenshot(f"{base}/{served.project}/stats",
                                       tmp_path / "stats.png", height=3400)
    # The same page for a project with nothing recorded: the check can tell them apart.
    empty = screenshot.screenshot(f"{base}/nothing-recorded/metrics", tmp_path / "empty.png",
                                  height=1700)
    assert plotted_pixels(empty) < 200
    # Three 5-second intervals of traffic (what a loaded machine may record in this test)
    # draw about 3,300 such pixels on the metrics page; the empty page under 200.
    assert plotted_pixels(metrics) > 2000
    assert plotted_pixels(stats_page) > 15000
