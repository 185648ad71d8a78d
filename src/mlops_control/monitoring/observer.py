"""The serving observer of local endpoints: what each worker records into the metrics store.

``MLOPS_SERVING_OBSERVER=mlops_control.monitoring.observer:MetricsObserver`` (the control
centre sets it for the endpoints it starts, with ``MLOPS_METRICS_STORE`` and
``MLOPS_ENDPOINT_NAME``). Nothing is written on the request path:

- ``on_response`` (event-loop thread, every answer): a counter and a latency bucket, under a
  lock held for a few hundred nanoseconds;
- ``on_batch`` (the observer thread, every predicted batch): keeps a reference to the batch's
  input and predictions, up to :data:`MAX_ROWS_PER_INTERVAL` rows an interval;
- a flush thread, every :data:`FLUSH_S` seconds: computes the interval's statistics with numpy,
  reads the process's memory and CPU, and writes one row to the store.

Drift needs the training statistics of the version being served: looked up in the store, or
fetched once from MLflow (``MLFLOW_TRACKING_URI``) and kept in the store for the dashboards.
The version is read from ``<MLOPS_ML_ROOT>/model``, the link the control centre moves on a
swap, so statistics follow the version live at that moment.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlops_control import names
from mlops_control.errors import ControlCentreError
from mlops_control.monitoring import fast_stats, latency, reference, stats
from mlops_control.monitoring.store import RETENTION_S, Interval, MetricsStore

logger = logging.getLogger("mlops_control.monitoring")

FLUSH_S = 5.0
IDLE_FLUSH_S = 30.0
"""With no traffic, a row (memory, CPU) is still written this often."""
MAX_BATCHES_PER_INTERVAL = 1000
"""Input statistics of an interval come from at most this many batches, a uniform sample of
them (reservoir sampling): it bounds the flush's work, whatever the load. Requests, errors,
latency and rows are always all counted."""
REFERENCE_RETRY_S = 30.0
PRUNE_EVERY_S = 3600.0
DISTINCT_PREDICTIONS = 20
"""Up to this many distinct predicted values (a classifier's classes) are counted one by one."""


@dataclass
class Window:
    started: float
    requests: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    rows: int = 0
    seen_batches: int = 0
    latency: dict[int, int] = field(default_factory=dict)
    batches: list[tuple[Any, Any]] = field(default_factory=list)


class MetricsObserver:
    def __init__(self, store_path: str | None = None, endpoint: str | None = None,
                 flush_s: float | None = None) -> None:
        env = os.environ
        path = store_path or env.get(names.ENV_METRICS_STORE)
        if not path:
            raise ControlCentreError(f"{names.ENV_METRICS_STORE} is not set: the metrics "
                                     "observer has nowhere to write")
        self.store = MetricsStore(path)
        self.endpoint = endpoint or env.get(names.ENV_ENDPOINT_NAME) or "unnamed"
        self.project = env.get(names.ENV_MODEL_NAME) or self.endpoint
        self.initial_version = env.get(names.ENV_MODEL_VERSION) or None
        root = env.get(names.ENV_ML_ROOT)
        self.model_link = Path(root) / "model" if root else None
        self.flush_s = flush_s or float(env.get(names.ENV_METRICS_FLUSH_S) or FLUSH_S)
        self.registry = _registry()
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._window = Window(time.time())
        self._last_write = 0.0
        self._last_prune = 0.0
        self._references: dict[str, dict[str, Any] | None] = {}
        self._reference_retry: dict[str, float] = {}
        self._feature_names: dict[str, list[str] | None] = {}
        self._process = _process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-flush", daemon=True)
        self._thread.start()

    # --- the serving side: cheap --------------------------------------------------------
    def on_response(self, status: int, latency_s: float) -> None:
        index = latency.bucket(latency_s)
        with self._lock:
            window = self._window
            window.requests += 1
            if status >= 500:
                window.errors_5xx += 1
            elif status >= 400:
                window.errors_4xx += 1
            window.latency[index] = window.latency.get(index, 0) + 1

    def on_batch(self, n_rows: int, latency_s: float, error: bool, inputs: Any,
                 outputs: Any) -> None:
        if error or inputs is None:
            return
        with self._lock:
            window = self._window
            window.rows += n_rows
            window.seen_batches += 1
            if len(window.batches) < MAX_BATCHES_PER_INTERVAL:
                window.batches.append((inputs, outputs))
            else:
                slot = random.randrange(window.seen_batches)
                if slot < MAX_BATCHES_PER_INTERVAL:
                    window.batches[slot] = (inputs, outputs)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self.flush(final=True)
        self.store.close()

    # --- the flush thread -----------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.wait(self.flush_s):
            try:
                self.flush()
            except Exception:  # a failed write must not end the metrics of this worker
                logger.exception("metrics flush failed", extra={"endpoint": self.endpoint})

    def flush(self, final: bool = False) -> Interval | None:
        """Write the interval since the last flush; None when there was nothing worth it."""
        with self._flush_lock:
            now = time.time()
            with self._lock:
                window, self._window = self._window, Window(now)
            idle = not window.requests and not window.rows
            if idle and not final and now - self._last_write < IDLE_FLUSH_S:
                self._window.started = window.started  # the quiet time joins the next one
                return None
            version = self.current_version()
            interval = Interval(
                endpoint=self.endpoint, project=self.project, version=version, pid=self.pid,
                started=window.started, ended=now, requests=window.requests,
                errors_4xx=window.errors_4xx, errors_5xx=window.errors_5xx, rows=window.rows,
                latency=window.latency, data=self._summarize(window, version))
            self._gauges(interval)
            self.store.write(interval)
            self._last_write = now
            if now - self._last_prune > PRUNE_EVERY_S:
                self._last_prune = now
                self.store.prune(now - RETENTION_S)
            return interval

    def current_version(self) -> str | None:
        if self.model_link is not None:
            try:
                target = Path(os.readlink(self.model_link)).name
            except OSError:
                target = ""
            if target.isdigit():
                return target
        return self.initial_version

    # --- statistics -----------------------------------------------------------------------
    def _summarize(self, window: Window, version: str | None) -> dict[str, Any]:
        if not window.batches:
            return {}
        ref = self.reference(version)
        features: dict[str, list[Any]] = {}
        for inputs in _concatenated([inputs for inputs, _ in window.batches]):
            named = fast_stats.columns(inputs)
            if not hasattr(inputs, "columns"):
                named = self._name(named, version)
            for name, values in named:
                features.setdefault(name, []).append(values)
        outputs = [np.asarray(p) for _, p in window.batches if p is not None]
        reference_features = (ref or {}).get("features") or {}
        summary = {name: _feature(np.concatenate(parts), reference_features.get(name))
                   for name, parts in features.items()}
        data: dict[str, Any] = {"features": summary, "sampled_batches": len(window.batches),
                                "batches": window.seen_batches}
        if outputs:
            data["predictions"] = _predictions(outputs, (ref or {}).get("target"))
        return data

    def _name(self, named: list[tuple[str, Any]], version: str | None) -> list[tuple[str, Any]]:
        """A matrix has no column names: take the signature's (the model's column order)."""
        key = version or ""
        if key not in self._feature_names:
            self._feature_names[key] = self._signature_names()
        found = self._feature_names[key]
        if found is None or len(found) != len(named):
            return named
        return [(name, values) for name, (_, values) in zip(found, named, strict=True)]

    def _signature_names(self) -> list[str] | None:
        if self.model_link is None:
            return None
        from mlops_control import signature
        from mlops_control.model_loader import read_mlmodel

        try:
            parsed = signature.parse(read_mlmodel(self.model_link))
        except (ControlCentreError, OSError):
            return None
        if parsed is None or not parsed.is_column_based:
            return None
        return list(parsed.input_names)

    def reference(self, version: str | None) -> dict[str, Any] | None:
        """The training statistics of ``version``: from the store, else from MLflow (then
        kept in the store). None while unknown; MLflow is asked again after a pause."""
        if version is None:
            return None
        if version in self._references:
            return self._references[version]
        found = self.store.training_stats(self.project, version)
        if found is None and self.registry is not None:
            if time.monotonic() < self._reference_retry.get(version, 0.0):
                return None
            try:
                found = reference.training_stats(self.registry, self.project, version)
            except ControlCentreError as exc:
                self._reference_retry[version] = time.monotonic() + REFERENCE_RETRY_S
                logger.warning("training statistics not reachable; will ask again", extra={
                    "endpoint": self.endpoint, "version": version, "error": str(exc)[:200]})
                return None
            if found is not None:
                self.store.put_training_stats(self.project, version, found)
        self._references[version] = found
        return found

    def _gauges(self, interval: Interval) -> None:
        if self._process is None:
            return
        import psutil

        try:
            interval.rss_bytes = int(self._process.memory_info().rss)
            interval.cpu_percent = float(self._process.cpu_percent(interval=None))
            interval.memory_percent = 100.0 * interval.rss_bytes / psutil.virtual_memory().total
            interval.disk_percent = float(psutil.disk_usage(str(self.store.path.parent)).percent)
        except (OSError, psutil.Error):
            return


def _concatenated(batches: list[Any]) -> list[Any]:
    """Consecutive batches of the same shape joined into one (a matrix, or a DataFrame), so the
    statistics are computed once per column instead of once per batch."""
    groups: list[tuple[Any, list[Any]]] = []
    for batch in batches:
        key: Any = (("frame", tuple(batch.columns)) if hasattr(batch, "columns")
                    else ("array", np.shape(batch)[1:]))
        if groups and groups[-1][0] == key:
            groups[-1][1].append(batch)
        else:
            groups.append((key, [batch]))
    joined = []
    for key, members in groups:
        if len(members) == 1:
            joined.append(members[0])
        elif key[0] == "frame":
            import pandas as pd

            joined.append(pd.concat(members, ignore_index=True))
        else:
            joined.append(np.concatenate([np.asarray(m) for m in members]))
    return joined


def _feature(values: np.ndarray, summary: dict[str, Any] | None) -> dict[str, Any]:
    # A feature the training data had as text stays categorical whatever a request sends
    # in it (numbers reach the model as they came, as in MLflow: see schema._string).
    categorical = summary is not None and summary.get("kind") == "categorical"
    numbers = None if categorical else fast_stats.as_numbers(values)
    if numbers is None:
        missing = sum(1 for v in values.tolist() if stats.is_missing(v))
        return {"count": int(values.size) - missing, "missing": missing, "kind": "categorical"}
    result = fast_stats.moments(numbers).as_dict()
    if summary and summary.get("kind") == "numeric" and summary.get("counts"):
        result["counts"] = fast_stats.histogram(summary["edges"], numbers)
    return result


def _predictions(parts: list[np.ndarray], target: dict[str, Any] | None) -> dict[str, Any]:
    flat = [p.reshape(-1) for p in parts if p.ndim == 1 or (p.ndim == 2 and p.shape[1] == 1)]
    if not flat:
        return {}
    numbers = fast_stats.as_numbers(np.concatenate(flat))
    if numbers is None:
        return {}
    result = fast_stats.moments(numbers).as_dict()
    present = numbers[~np.isnan(numbers)]
    if present.size:
        distinct, counts = np.unique(present, return_counts=True)
        if distinct.size <= DISTINCT_PREDICTIONS:
            result["values"] = {repr(float(v)): int(c) for v, c in zip(distinct, counts,
                                                                           strict=True)}
        q10, q50, q90 = np.quantile(present, [0.1, 0.5, 0.9])
        result["quantiles"] = {"p10": float(q10), "p50": float(q50), "p90": float(q90)}
    if target and target.get("kind") == "numeric" and target.get("counts"):
        result["counts"] = fast_stats.histogram(target["edges"], numbers)
    return result


def _registry() -> Any:
    from mlops_control.registry import RegistryClient

    uri = os.environ.get(names.ENV_TRACKING_URI, "")
    if not uri.startswith(("http://", "https://")):
        return None
    return RegistryClient.from_env(uri)


def _process() -> Any:
    try:
        import psutil
    except ImportError:
        return None
    process = psutil.Process()
    process.cpu_percent(interval=None)  # the first call only starts the measurement
    return process
