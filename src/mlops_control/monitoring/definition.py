"""The two dashboards of a project, defined once: ``<project>_metrics`` and ``<project>_stats``.

A dashboard is a list of panels; a panel plots statistics of catalogue metrics
(:mod:`catalogue`). Two renderers draw them: CloudWatch dashboard bodies
(:mod:`mlops_control.dashboards.cloudwatch`, for SageMaker endpoints) and HTML pages with
inline SVG (:mod:`mlops_control.dashboards.html`, for local endpoints, from the local metrics
store). A panel's ``scope`` says how it repeats:

- ``endpoint``: one line per series and endpoint;
- ``features``: one line per feature (the series' single metric);
- ``feature``: one panel per feature, the mean with a band of one standard deviation.

Standard library only: the deployment's glue Lambda renders the CloudWatch bodies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mlops_control import names
from mlops_control.monitoring import stats

Scope = Literal["endpoint", "features", "feature"]


@dataclass(frozen=True)
class Series:
    metric: str
    """A name in :data:`catalogue.METRICS`."""
    stat: str
    """A CloudWatch statistic: Sum, Average, Minimum, Maximum, SampleCount or pNN."""
    label: str


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    series: tuple[Series, ...]
    unit: str
    scope: Scope = "endpoint"
    thresholds: tuple[tuple[str, float], ...] = ()
    """Horizontal lines worth seeing (label, value), e.g. the drift thresholds."""
    note: str = ""


@dataclass(frozen=True)
class Dashboard:
    kind: Literal["metrics", "stats"]
    summary: str
    panels: tuple[Panel, ...]

    def name(self, project: str) -> str:
        return (names.metrics_dashboard(project) if self.kind == "metrics"
                else names.stats_dashboard(project))


METRICS = Dashboard("metrics", "requests, errors, latency and resources", (
    Panel("requests", "Requests", (Series("Invocations", "Sum", "requests"),),
          "requests per minute"),
    Panel("errors", "Errors (4xx, 5xx)", (
        Series("Invocation4XXErrors", "Sum", "4xx"),
        Series("Invocation5XXErrors", "Sum", "5xx")), "errors per minute"),
    Panel("latency", "Model latency", (
        Series("ModelLatency", "p50", "p50"), Series("ModelLatency", "p90", "p90"),
        Series("ModelLatency", "p99", "p99")), "microseconds"),
    Panel("overhead", "Overhead latency", (
        Series("OverheadLatency", "p50", "p50"), Series("OverheadLatency", "p99", "p99")),
        "microseconds", note="added by SageMaker's front end"),
    Panel("cpu", "CPU utilisation", (Series("CPUUtilization", "Average", "CPU"),),
          "percent (100 per core)"),
    Panel("memory", "Memory and disk utilisation", (
        Series("MemoryUtilization", "Average", "memory"),
        Series("DiskUtilization", "Average", "disk")), "percent"),
))

STATS = Dashboard("stats", "inputs and outputs over time, and drift", (
    Panel("rows", "Predicted rows", (Series(names.STAT_PREDICTION, "SampleCount", "rows"),),
          "rows per minute"),
    Panel("predictions", "Prediction distribution", (
        Series(names.STAT_PREDICTION, "p10", "p10"), Series(names.STAT_PREDICTION, "p50", "p50"),
        Series(names.STAT_PREDICTION, "p90", "p90"),
        Series(names.STAT_PREDICTION, "Average", "mean")), "prediction"),
    Panel("drift", "Drift per feature (PSI against the training data)", (
        Series(names.STAT_FEATURE_DRIFT, "Maximum", "PSI"),), "PSI", scope="features",
        thresholds=(("moved", stats.PSI_MODERATE), ("shifted", stats.PSI_MAJOR))),
    Panel("missing", "Share missing per feature", (
        Series(names.STAT_FEATURE_MISSING, "Average", "missing"),), "share of rows",
        scope="features"),
    Panel("feature", "{feature}", (
        Series(names.STAT_FEATURE_VALUE, "Average", "mean"),
        Series(names.STAT_FEATURE_SPREAD, "Average", "std")), "value", scope="feature"),
))

DASHBOARDS = (METRICS, STATS)
