"""The local side in process: latency histograms, the metrics store, the observer's counting
and flushing, the dashboards' arithmetic, and the training job's data capture."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_control.dashboards import html
from mlops_control.monitoring import fast_stats, latency, series, stats
from mlops_control.monitoring.observer import MetricsObserver
from mlops_control.monitoring.store import Interval, MetricsStore
from mlops_control.monitoring.training_data import DataCapture


def test_latency_percentiles_are_within_half_a_bucket():
    values = [0.001 * (i + 1) for i in range(1000)]  # 1 ms .. 1 s, evenly
    histogram: dict[int, int] = {}
    for v in values:
        histogram[latency.bucket(v)] = histogram.get(latency.bucket(v), 0) + 1
    for q, exact in ((0.5, 0.5), (0.9, 0.9), (0.99, 0.99)):
        assert latency.percentile(histogram, q) == pytest.approx(exact, rel=0.05)
    assert latency.percentile({}, 0.5) is None
    merged = latency.merge([{3: 1, 4: 2}, {4: 1}])
    assert merged == {3: 1, 4: 3}


def _interval(**changes) -> Interval:
    base = dict(endpoint="p-production", project="p", version="1", pid=1, started=100.0,
                ended=105.0)
    return Interval(**{**base, **changes})


def test_the_store_keeps_intervals_and_training_statistics_across_connections(tmp_path):
    path = tmp_path / "m.sqlite"
    store = MetricsStore(path)
    store.write(_interval(requests=3, latency={10: 3}, data={"features": {"a": {"count": 1}}}))
    store.put_training_stats("p", "1", {"rows": 5})
    store.close()
    again = MetricsStore(path)
    (found,) = again.intervals(["p-production"], 0.0)
    assert (found.requests, found.latency, found.data) == (3, {10: 3},
                                                           {"features": {"a": {"count": 1}}})
    assert again.training_stats("p", "1") == {"rows": 5}
    assert again.endpoints() == [("p-production", "p", 105.0)]
    assert again.prune(200.0) == 1 and again.intervals(["p-production"], 0.0) == []


def test_the_observer_counts_answers_and_summarizes_batches_when_it_flushes(tmp_path,
                                                                            monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    observer = MetricsObserver(str(tmp_path / "m.sqlite"), "p-production", flush_s=3600)
    try:
        for status in (200, 200, 400, 500):
            observer.on_response(status, 0.002)
        frame = pd.DataFrame({"a": [1.0, 2.0, np.nan], "b": ["x", "y", None]})
        observer.on_batch(3, 0.002, False, frame, np.array([0, 1, 1]))
        observer.on_batch(1, 0.002, True, None, None)  # a failed batch has no data
        interval = observer.flush()
    finally:
        observer.close()
    assert interval is not None
    assert (interval.requests, interval.errors_4xx, interval.errors_5xx, interval.rows) == \
        (4, 1, 1, 3)
    a = interval.data["features"]["a"]
    assert (a["count"], a["missing"], a["mean"]) == (2, 1, 1.5)
    assert interval.data["features"]["b"] == {"count": 2, "missing": 1, "kind": "categorical"}
    assert interval.data["predictions"]["values"] == {"0.0": 1, "1.0": 2}
    assert interval.rss_bytes and interval.rss_bytes > 0


def test_a_text_feature_stays_categorical_when_a_request_sends_numbers_in_it(tmp_path,
                                                                            monkeypatch):
    # Numbers in a string column reach the model as they came (as in MLflow); the feature's
    # statistics must not turn numeric for that interval against a categorical reference.
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("MLOPS_MODEL_NAME", "p")
    monkeypatch.setenv("MLOPS_MODEL_VERSION", "1")
    path = tmp_path / "m.sqlite"
    store = MetricsStore(path)
    store.put_training_stats("p", "1", {"features": {
        "city": {"kind": "categorical", "count": 10, "missing": 0}}})
    store.close()
    observer = MetricsObserver(str(path), "p-production", flush_s=3600)
    try:
        observer.on_batch(2, 0.002, False, pd.DataFrame({"city": pd.Series([5, 6], dtype=object)}),
                          np.array([0, 1]))
        interval = observer.flush()
    finally:
        observer.close()
    assert interval is not None
    assert interval.data["features"]["city"] == {"count": 2, "missing": 0, "kind": "categorical"}


def test_the_observer_keeps_a_bounded_sample_of_batches(tmp_path, monkeypatch):
    from mlops_control.monitoring import observer as module

    monkeypatch.setattr(module, "MAX_BATCHES_PER_INTERVAL", 10)
    observer = MetricsObserver(str(tmp_path / "m.sqlite"), "p-production", flush_s=3600)
    try:
        for i in range(100):
            observer.on_batch(1, 0.001, False, np.array([[float(i)]]), np.array([0]))
        interval = observer.flush()
    finally:
        observer.close()
    assert interval is not None and interval.rows == 100
    assert (interval.data["sampled_batches"], interval.data["batches"]) == (10, 100)


def test_rates_spread_each_interval_over_the_buckets_it_spans():
    window = series.Window(0.0, 60.0, 6)  # 10 s buckets
    view = series.EndpointSeries([_interval(started=5.0, ended=25.0, requests=20)], window, {})
    # 20 requests over 5..25 s: 5 s in the first bucket, 10 in the second, 5 in the third.
    assert view.per_minute("requests") == pytest.approx([30.0, 60.0, 30.0, None, None, None],
                                                        nan_ok=True)


def test_drift_per_bucket_compares_with_the_served_versions_reference():
    reference = fast_stats.training_stats(pd.DataFrame({"a": np.arange(1000.0)}))
    edges = reference["features"]["a"]["edges"]
    same = fast_stats.histogram(edges, np.arange(0.0, 1000.0, 5))
    high = fast_stats.histogram(edges, np.full(200, 990.0))
    intervals = [
        _interval(started=0.0, ended=9.0, data={"features": {"a": {"count": 200,
                                                                   "counts": same}}}),
        _interval(started=10.0, ended=19.0, data={"features": {"a": {"count": 200,
                                                                     "counts": high}}})]
    view = series.EndpointSeries(intervals, series.Window(0.0, 20.0, 2), {"1": reference})
    stable, shifted = view.drift("a")
    assert stable is not None and stable < stats.PSI_MODERATE
    assert shifted is not None and shifted > stats.PSI_MAJOR


def test_an_empty_project_page_says_there_is_no_data(tmp_path):
    pages = html.DashboardPages(tmp_path / "m.sqlite", lambda: [], clock=time.time)
    status, content_type, body = pages("/dashboards/nobody?window=1h")
    assert status == 200 and content_type.startswith("text/html")
    assert b"no data in this window" in body and b'class="point"' not in body
    assert pages("/dashboards/Not_A_Project")[0] == 404


def test_the_training_data_capture_sees_what_train_py_loaded(tmp_path, monkeypatch):
    project = tmp_path / "demo"
    project.mkdir()
    (project / "data.py").write_text(
        "import pandas as pd\n"
        "def get_data():\n"
        "    X = pd.DataFrame({'a': [1.0, 2.0, 3.0, 4.0]})\n"
        "    return X, pd.Series([0, 1, 0, 1])\n")
    capture = DataCapture()
    monkeypatch.syspath_prepend(str(project))
    monkeypatch.delitem(sys.modules, "data", raising=False)
    capture.install(project)
    try:
        from data import get_data  # what train.py does

        get_data()
    finally:
        sys.modules.pop("data", None)
    document = capture.statistics(project)
    assert document["source"] == "captured" and document["rows"] == 4
    assert document["features"]["a"]["mean"] == 2.5
    # A train.py that never calls get_data(): the statistics load the data once more.
    fresh = DataCapture().statistics(Path(project))
    assert fresh["source"] == "reloaded" and fresh["features"] == document["features"]
