"""The local dashboards' numbers: an endpoint's stored intervals added up bucket by bucket.

A window (say the last hour) is cut into equal buckets; every interval a worker wrote falls in
the bucket in which it ended. Counts become rates per minute; latency histograms merge into
percentiles; memory and CPU add up over the workers (each worker's average in the bucket);
feature moments merge exactly; live histograms are compared with the training histogram of
the version that served them (:func:`stats.drift`). A bucket without any interval is None: the
endpoint was not running, and the charts leave a gap.

:func:`value` maps a catalogue metric's local measurement and a CloudWatch statistic to these
numbers, so the local pages draw exactly the panels of :mod:`definition`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from mlops_control.monitoring import latency, stats
from mlops_control.monitoring.store import Interval, MetricsStore

Values = list[float | None]


@dataclass
class Window:
    start: float
    end: float
    buckets: int

    @property
    def step(self) -> float:
        return (self.end - self.start) / self.buckets

    def times(self) -> list[float]:
        """The end of each bucket (what its point is drawn at)."""
        return [self.start + (i + 1) * self.step for i in range(self.buckets)]

    def index(self, moment: float) -> int | None:
        if moment < self.start or moment > self.end:
            return None
        return min(int((moment - self.start) / self.step), self.buckets - 1)


class EndpointSeries:
    def __init__(self, intervals: Sequence[Interval], window: Window,
                 references: dict[str, dict[str, Any] | None]) -> None:
        self.window = window
        self.references = references
        self.buckets: list[list[Interval]] = [[] for _ in range(window.buckets)]
        for interval in intervals:
            index = window.index(interval.ended)
            if index is not None:
                self.buckets[index].append(interval)
        self.intervals = [i for bucket in self.buckets for i in bucket]

    def _each(self, compute: Callable[[list[Interval]], float | None]) -> Values:
        return [compute(bucket) if bucket else None for bucket in self.buckets]

    # --- requests, errors, latency, resources ---------------------------------------------
    def per_minute(self, field: str) -> Values:
        """A count per minute: each interval's count spread over the buckets it spans, in
        proportion to the time it spent in each (so rates do not jump with flush timing)."""
        window = self.window
        totals = [0.0] * window.buckets
        covered = [False] * window.buckets
        for interval in self.intervals:
            span = interval.ended - interval.started
            first = window.index(max(interval.started, window.start))
            last = window.index(interval.ended)
            if first is None or last is None:
                continue
            for b in range(first, last + 1):
                low = window.start + b * window.step
                overlap = min(low + window.step, interval.ended) - max(low, interval.started)
                share = overlap / span if span > 0 else 1.0
                if share > 0:
                    totals[b] += getattr(interval, field) * share
                    covered[b] = True
        minutes = window.step / 60.0
        return [t / minutes if c else None for t, c in zip(totals, covered, strict=True)]

    def latency_ms(self, q: float) -> Values:
        def compute(bucket: list[Interval]) -> float | None:
            seconds = latency.percentile(latency.merge(i.latency for i in bucket), q)
            return None if seconds is None else seconds * 1000.0
        return self._each(compute)

    def gauge(self, field: str, scale: float = 1.0) -> Values:
        """Summed over the workers: each worker's average in the bucket."""
        def compute(bucket: list[Interval]) -> float | None:
            by_pid: dict[int, list[float]] = defaultdict(list)
            for i in bucket:
                value = getattr(i, field)
                if value is not None:
                    by_pid[i.pid].append(float(value))
            if not by_pid:
                return None
            return sum(sum(v) / len(v) for v in by_pid.values()) * scale
        return self._each(compute)

    def average(self, field: str) -> Values:
        def compute(bucket: list[Interval]) -> float | None:
            found = [float(getattr(i, field)) for i in bucket if getattr(i, field) is not None]
            return sum(found) / len(found) if found else None
        return self._each(compute)

    # --- inputs ---------------------------------------------------------------------------
    def features(self) -> list[str]:
        """Features in the training data's order, then any others seen."""
        order: list[str] = []
        for ref in self.references.values():
            order += [f for f in (ref or {}).get("feature_order", []) if f not in order]
        for interval in self.intervals:
            order += [f for f in interval.data.get("features", {}) if f not in order]
        return order

    def moments(self, feature: str) -> list[stats.Moments | None]:
        result: list[stats.Moments | None] = []
        for bucket in self.buckets:
            merged = None
            for interval in bucket:
                raw = interval.data.get("features", {}).get(feature)
                if raw is None or raw.get("kind") == "categorical":
                    continue
                moments = stats.Moments.from_dict(raw)
                merged = moments if merged is None else merged.merge(moments)
            result.append(merged)
        return result

    def feature_stat(self, feature: str, what: str) -> Values:
        def pick(m: stats.Moments | None) -> float | None:
            if m is None:
                return None
            if what == "missing":
                return m.missing_share
            if not m.count:
                return None
            return m.mean if what == "mean" else m.std
        return [pick(m) for m in self.moments(feature)]

    def _counts(self, intervals: Sequence[Interval], feature: str | None
                ) -> dict[str | None, list[int]]:
        """Live histogram counts by version, of a feature (or the predictions, for None)."""
        by_version: dict[str | None, list[int]] = {}
        for interval in intervals:
            part = (interval.data.get("predictions") if feature is None
                    else interval.data.get("features", {}).get(feature)) or {}
            counts = part.get("counts")
            if not counts:
                continue
            total = by_version.setdefault(interval.version, [0] * len(counts))
            if len(total) == len(counts):
                by_version[interval.version] = [a + b for a, b in zip(total, counts,
                                                                        strict=True)]
        return by_version

    def _drift(self, intervals: Sequence[Interval], feature: str | None) -> float | None:
        by_version = self._counts(intervals, feature)
        if not by_version:
            return None
        # The version with the most rows in these intervals is the one compared.
        version, counts = max(by_version.items(), key=lambda item: sum(item[1]))
        ref = self.references.get(version or "") or {}
        summary = ref.get("target") if feature is None else (ref.get("features") or {}).get(
            feature)
        return stats.drift(summary, counts) if summary else None

    def drift(self, feature: str | None) -> Values:
        """PSI per bucket (None where a bucket has too few rows to tell)."""
        return [self._drift(bucket, feature) if bucket else None for bucket in self.buckets]

    def window_drift(self, feature: str | None) -> float | None:
        """PSI over the whole window, for the version served last."""
        latest = self.latest_version()
        return self._drift([i for i in self.intervals if i.version == latest], feature)

    def latest_version(self) -> str | None:
        return self.intervals[-1].version if self.intervals else None

    # --- predictions ----------------------------------------------------------------------
    def prediction_values(self) -> list[dict[str, int] | None]:
        """Per bucket, the count of each predicted value, where the model predicts few
        distinct values (a classifier); None elsewhere."""
        result: list[dict[str, int] | None] = []
        for bucket in self.buckets:
            merged: dict[str, int] | None = {} if bucket else None
            for interval in bucket:
                part = interval.data.get("predictions")
                if not part:
                    continue
                if "values" not in part or merged is None:
                    merged = None
                    break
                for key, count in part["values"].items():
                    merged[key] = merged.get(key, 0) + int(count)
            result.append(merged or None)
        return result

    def prediction_stat(self, stat: str) -> Values:
        if stat == "SampleCount":
            return self.per_minute("rows")
        if stat == "Average":
            return [m.mean if m and m.count else None for m in self._prediction_moments()]
        q = _quantile_of(stat)
        values = self.prediction_values()
        result: Values = []
        for bucket, counts in zip(self.buckets, values, strict=True):
            if counts:
                result.append(_quantile_from_counts(counts, q))
                continue
            # Many distinct values: the row-weighted mean of the intervals' own quantiles.
            weighted = [(i.data["predictions"]["quantiles"].get(f"p{round(q * 100)}"),
                         i.data["predictions"].get("count", 0)) for i in bucket
                        if (i.data.get("predictions") or {}).get("quantiles")]
            weighted = [(v, w) for v, w in weighted if v is not None and w]
            total = sum(w for _, w in weighted)
            result.append(sum(v * w for v, w in weighted) / total if total else None)
        return result

    def _prediction_moments(self) -> list[stats.Moments | None]:
        result: list[stats.Moments | None] = []
        for bucket in self.buckets:
            merged = None
            for interval in bucket:
                raw = interval.data.get("predictions")
                if raw and "count" in raw:
                    moments = stats.Moments.from_dict(raw)
                    merged = moments if merged is None else merged.merge(moments)
            result.append(merged)
        return result


def _quantile_of(stat: str) -> float:
    if not stat.startswith("p"):
        raise ValueError(f"not a percentile statistic: {stat}")
    return float(stat[1:]) / 100.0


def _quantile_from_counts(counts: dict[str, int], q: float) -> float:
    ordered = sorted((float(k), c) for k, c in counts.items())
    rank = max(1, math.ceil(q * sum(c for _, c in ordered)))
    seen = 0
    for value, count in ordered:
        seen += count
        if seen >= rank:
            return value
    return ordered[-1][0]


def value(view: EndpointSeries, local: str, stat: str, feature: str | None = None) -> Values:
    """The local numbers standing for a catalogue metric's statistic (see the catalogue's
    ``local`` names)."""
    if local in ("requests", "errors_4xx", "errors_5xx"):
        return view.per_minute(local)
    if local == "latency":
        return view.latency_ms(_quantile_of(stat))
    if local == "cpu":
        return view.gauge("cpu_percent")
    if local == "memory":
        return view.gauge("memory_percent")
    if local == "disk":
        return view.average("disk_percent")
    if local == "prediction":
        return view.prediction_stat(stat)
    if feature is None:
        raise ValueError(f"{local} needs a feature")
    if local == "feature_value":
        return view.feature_stat(feature, "mean")
    if local == "feature_std":
        return view.feature_stat(feature, "std")
    if local == "feature_missing":
        return view.feature_stat(feature, "missing")
    if local == "feature_drift":
        return view.drift(feature)
    raise ValueError(f"no local measurement {local!r}")


def recorded(store: MetricsStore, project: str, endpoint: str, start: float,
             end: float) -> EndpointSeries:
    """What ``endpoint`` recorded between ``start`` and ``end``, as a single bucket (with the
    training statistics of the versions it served)."""
    intervals = store.intervals([endpoint], start, end)
    references = {v: store.training_stats(project, v) for v in {i.version for i in intervals}
                  if v}
    return EndpointSeries(intervals, Window(start, end, 1), references)
