"""CloudWatch metric data for ``<project>_stats``, from one data-capture file.

Per minute of inference time and feature: the present values as a statistic set
(``FeatureValue``: its Average is the mean, exact across files), their standard deviation
(``FeatureStd``) and the share of rows missing them (``FeatureMissingShare``); the predictions
as a distribution (``Prediction``, values and counts, so CloudWatch computes percentiles).
Per file: each numeric feature's drift against the training data (``FeatureDrift``, PSI) and
the largest of them (``MaxFeatureDrift``, what the drift alarm watches), stamped with the
file's last minute; a file needs :data:`stats.MIN_DRIFT_ROWS` rows for drift to be told.

Names and dimensions come from :mod:`catalogue` through :mod:`names`. Standard library only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from mlops_control import names
from mlops_control.monitoring import stats
from mlops_control.monitoring.capture import CaptureFile

MAX_DATUMS_PER_REQUEST = 1000
"""PutMetricData takes at most 1,000 metrics per request (and 1 MB; 1,000 of ours are far
smaller)."""
MAX_DISTRIBUTION_VALUES = 150
"""PutMetricData takes at most 150 distinct values per datum."""
CLOUDWATCH_LIMIT = 2.0 ** 360


def _dims(project: str, endpoint: str, feature: str | None) -> list[dict[str, str]]:
    dims = [{"Name": "Project", "Value": project}, {"Name": "Endpoint", "Value": endpoint}]
    if feature is not None:
        dims.append({"Name": "Feature", "Value": feature})
    return dims


def _value(name: str, value: float, when: datetime, dims: list[dict[str, str]]
           ) -> dict[str, Any]:
    return {"MetricName": name, "Dimensions": dims, "Timestamp": when, "Value": value,
            "Unit": "None"}


def _finite(value: float | None) -> bool:
    return value is not None and -CLOUDWATCH_LIMIT < value < CLOUDWATCH_LIMIT


def distribution(values: Sequence[float]) -> tuple[list[float], list[float]]:
    """``(Values, Counts)`` of numbers: exact when there are at most 150 distinct values (a
    classifier's classes), else counts in 150 equal-width bins, each at its centre."""
    counts = Counter(values)
    if len(counts) <= MAX_DISTRIBUTION_VALUES:
        ordered = sorted(counts)
        return ordered, [float(counts[v]) for v in ordered]
    low, high = min(values), max(values)
    width = (high - low) / MAX_DISTRIBUTION_VALUES
    binned = Counter(min(int((v - low) / width), MAX_DISTRIBUTION_VALUES - 1) for v in values)
    ordered_bins = sorted(binned)
    return ([low + (i + 0.5) * width for i in ordered_bins],
            [float(binned[i]) for i in ordered_bins])


def features_of(capture: CaptureFile, reference: Mapping[str, Any] | None) -> list[str]:
    """The training data's features in their order, then any others the requests carried."""
    order = list((reference or {}).get("feature_order") or [])
    seen = set(order)
    for minute in capture.minutes:
        for row in minute.rows:
            for name in row:
                if name not in seen:
                    seen.add(name)
                    order.append(name)
    return order


def datums(capture: CaptureFile, project: str, endpoint: str,
           reference: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """Every metric datum of one capture file (see the module docstring)."""
    features = features_of(capture, reference)
    out: list[dict[str, Any]] = []
    for minute in capture.minutes:
        when = minute.minute
        for feature in features:
            values = [row.get(feature) for row in minute.rows]
            if any(stats.is_text(v) for v in values):
                numbers: list[float | None] = []
            else:
                numbers = [stats.to_number(v) for v in values]
            m = stats.moments(numbers)
            dims = _dims(project, endpoint, feature)
            if values:
                missing = sum(1 for v in values if stats.is_missing(v))
                out.append(_value(names.STAT_FEATURE_MISSING, missing / len(values), when,
                                  dims))
            if m.count and _finite(m.minimum) and _finite(m.maximum):
                out.append({"MetricName": names.STAT_FEATURE_VALUE, "Dimensions": dims,
                            "Timestamp": when, "Unit": "None", "StatisticValues": {
                                "SampleCount": float(m.count), "Sum": m.mean * m.count,
                                "Minimum": m.minimum, "Maximum": m.maximum}})
            if m.count >= 2 and _finite(m.std):
                out.append(_value(names.STAT_FEATURE_SPREAD, m.std or 0.0, when, dims))
        predicted = [n for n in map(stats.to_number, minute.predictions)
                     if n is not None and _finite(n)]
        if predicted:
            values_, counts = distribution(predicted)
            out.append({"MetricName": names.STAT_PREDICTION, "Timestamp": when,
                        "Dimensions": _dims(project, endpoint, names.PREDICTION_FEATURE),
                        "Values": values_, "Counts": counts, "Unit": "None"})
    out += drift_datums(capture, project, endpoint, reference, features)
    return out


def drift_per_feature(capture: CaptureFile, reference: Mapping[str, Any] | None,
                      features: Sequence[str]) -> dict[str, float]:
    """PSI of each numeric feature over the whole file (features without a training
    histogram, or with too few rows, are left out)."""
    if not reference:
        return {}
    found: dict[str, float] = {}
    for feature in features:
        summary = (reference.get("features") or {}).get(feature)
        if not summary or summary.get("kind") != "numeric":
            continue
        counts = [0] * (len(summary["edges"]) + 1)
        for minute in capture.minutes:
            for row in minute.rows:
                number = stats.to_number(row.get(feature))
                if number is not None:
                    counts[stats.bin_of(summary["edges"], number)] += 1
        value = stats.drift(summary, counts)
        if value is not None:
            found[feature] = value
    return found


def drift_datums(capture: CaptureFile, project: str, endpoint: str,
                 reference: Mapping[str, Any] | None, features: Sequence[str]
                 ) -> list[dict[str, Any]]:
    drift = drift_per_feature(capture, reference, features)
    if not drift or not capture.minutes:
        return []
    when = capture.minutes[-1].minute
    out = [_value(names.STAT_FEATURE_DRIFT, value, when, _dims(project, endpoint, feature))
           for feature, value in drift.items()]
    out.append(_value(names.STAT_MAX_DRIFT, max(drift.values()), when,
                      _dims(project, endpoint, None)))
    return out


def requests(data: Sequence[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """PutMetricData requests of at most :data:`MAX_DATUMS_PER_REQUEST` datums each."""
    for start in range(0, len(data), MAX_DATUMS_PER_REQUEST):
        yield {"Namespace": names.STATS_NAMESPACE,
               "MetricData": list(data[start:start + MAX_DATUMS_PER_REQUEST])}
