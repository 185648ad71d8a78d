"""CloudWatch dashboard bodies for ``<project>_metrics`` and ``<project>_stats``.

The body follows CloudWatch's documented structure ("Dashboard Body Structure and Syntax"):
``{"widgets": [{"type": "metric"|"text", "x", "y", "width", "height", "properties": {...}}]}``
on a 24-column grid, each metric a list ``[namespace, name, dim, value, ..., {options}]``.

- ``<project>_metrics``: what SageMaker publishes for the endpoint and its variant, in
  ``AWS/SageMaker`` (invocations and errors, model and overhead latency) and
  ``/aws/sagemaker/Endpoints`` (CPU, memory and disk of the instances).
- ``<project>_stats``: the input and output statistics the control centre publishes from
  captured data in :data:`mlops_control.names.STATS_NAMESPACE`, per feature (mean, share
  missing, drift) and for the prediction (mean), dimensions ``Project``, ``Endpoint``,
  ``Feature``.

Standard library only: the deployment's glue Lambda builds these bodies.
"""

from __future__ import annotations

from typing import Any

from mlops_control import names

WIDTH = 12
HEIGHT = 6
PERIOD_S = 60
MAX_FEATURE_WIDGETS = 30
"""CloudWatch allows 500 metrics per dashboard; beyond this many features the stats dashboard
shows the first ones and says so, instead of failing PutDashboard."""


def _grid(widgets: list[dict[str, Any]]) -> dict[str, Any]:
    """Lay widgets out two per row (text widgets take a whole row)."""
    x = y = 0
    row_height = 0
    for widget in widgets:
        if widget["width"] > WIDTH or x + widget["width"] > 24:
            if x:
                y += row_height
            x, row_height = 0, 0
        widget["x"], widget["y"] = x, y
        row_height = max(row_height, widget["height"])
        x += widget["width"]
        if x >= 24:
            x, y, row_height = 0, y + row_height, 0
    return {"widgets": widgets}


def _text(markdown: str) -> dict[str, Any]:
    return {"type": "text", "width": 24, "height": 2, "properties": {"markdown": markdown}}


def _metric(title: str, region: str, metrics: list[list[Any]], stat: str = "Sum",
            unit_label: str | None = None) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "title": title, "region": region, "view": "timeSeries", "stacked": False,
        "period": PERIOD_S, "stat": stat, "metrics": metrics,
    }
    if unit_label:
        properties["yAxis"] = {"left": {"label": unit_label, "showUnits": False}}
    return {"type": "metric", "width": WIDTH, "height": HEIGHT, "properties": properties}


def metrics_dashboard(project: str, endpoint: str, variant: str, region: str) -> dict[str, Any]:
    """Infrastructure of ``endpoint``/``variant``: requests, errors, latency, CPU, memory,
    disk. Latencies are in microseconds as SageMaker reports them; the utilisations are
    percentages (CPU can exceed 100 on multi-core instances)."""
    inv = ["AWS/SageMaker"]
    dims = ["EndpointName", endpoint, "VariantName", variant]
    host = ["/aws/sagemaker/Endpoints"]
    widgets = [
        _text(f"# {names.metrics_dashboard(project)}\nEndpoint `{endpoint}`, variant "
              f"`{variant}`: requests, errors, latency and resources (SageMaker metrics)."),
        _metric("Invocations", region, [[*inv, "Invocations", *dims]]),
        _metric("Errors (4xx, 5xx)", region, [
            [*inv, "Invocation4XXErrors", *dims],
            [*inv, "Invocation5XXErrors", *dims]]),
        _metric("Model latency (µs)", region, [
            [*inv, "ModelLatency", *dims, {"stat": "Average", "label": "average"}],
            [*inv, "ModelLatency", *dims, {"stat": "p99", "label": "p99"}]],
            stat="Average", unit_label="microseconds"),
        _metric("Overhead latency (µs)", region, [
            [*inv, "OverheadLatency", *dims, {"stat": "Average", "label": "average"}],
            [*inv, "OverheadLatency", *dims, {"stat": "p99", "label": "p99"}]],
            stat="Average", unit_label="microseconds"),
        _metric("CPU utilisation (%)", region, [[*host, "CPUUtilization", *dims]],
                stat="Average", unit_label="percent"),
        _metric("Memory and disk utilisation (%)", region, [
            [*host, "MemoryUtilization", *dims],
            [*host, "DiskUtilization", *dims]], stat="Average", unit_label="percent"),
    ]
    return _grid(widgets)


def _stat(metric: str, project: str, endpoint: str, feature: str,
          options: dict[str, Any] | None = None) -> list[Any]:
    line: list[Any] = [names.STATS_NAMESPACE, metric, "Project", project, "Endpoint", endpoint,
                       "Feature", feature]
    return [*line, options] if options else line


def stats_dashboard(project: str, endpoint: str, features: list[str],
                    region: str) -> dict[str, Any]:
    """Inputs and outputs of ``endpoint`` over time, from its captured data: per feature the
    mean and the share of missing values, the prediction mean, and drift per feature
    (population stability index against the training data)."""
    shown = list(features)[:MAX_FEATURE_WIDGETS]
    note = "" if len(features) <= MAX_FEATURE_WIDGETS else (
        f" Showing the first {MAX_FEATURE_WIDGETS} of {len(features)} features.")
    widgets: list[dict[str, Any]] = [
        _text(f"# {names.stats_dashboard(project)}\nInputs and outputs of `{endpoint}` from "
              f"captured requests (namespace `{names.STATS_NAMESPACE}`).{note}"),
        _metric("Prediction mean", region, [
            _stat(names.STAT_PREDICTION_MEAN, project, endpoint, names.PREDICTION_FEATURE)],
            stat="Average"),
    ]
    if shown:
        widgets.append(_metric("Drift per feature (PSI)", region, [
            _stat(names.STAT_FEATURE_DRIFT, project, endpoint, f, {"label": f})
            for f in shown], stat="Maximum"))
        widgets.append(_metric("Share missing per feature", region, [
            _stat(names.STAT_FEATURE_MISSING, project, endpoint, f, {"label": f})
            for f in shown], stat="Average", unit_label="share"))
        for feature in shown:
            widgets.append(_metric(f"{feature}: mean", region, [
                _stat(names.STAT_FEATURE_MEAN, project, endpoint, feature,
                      {"label": "mean"})], stat="Average"))
    return _grid(widgets)
