"""CloudWatch dashboard bodies for ``<project>_metrics`` and ``<project>_stats``, rendered from
the one dashboard definition (:mod:`mlops_control.monitoring.definition`).

The body follows CloudWatch's documented structure ("Dashboard Body Structure and Syntax"):
``{"widgets": [{"type": "metric"|"text", "x", "y", "width", "height", "properties": {...}}]}``
on a 24-column grid, each metric a list ``[namespace, name, dim, value, ..., {options}]``.
Which namespace, name and dimensions a metric has comes from the metric catalogue
(:mod:`mlops_control.monitoring.catalogue`), the same list the publishers are tested against.

A project's dashboards cover all of its endpoints (one per stage), in a fixed order, so that
deploying one stage never hides another and the same deployment always writes the same body.

Standard library only: the deployment's glue Lambda builds these bodies.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mlops_control import names

if TYPE_CHECKING:
    from mlops_control.monitoring import catalogue
    from mlops_control.monitoring.definition import Panel, Series

# The monitoring modules are imported when a body is made. Every Lambda handler imports this
# module (through the SageMaker backend); only the deployment's resolve step makes a body,
# and the others should not pay for it at cold start.

WIDTH = 12
HEIGHT = 6
FEATURE_WIDTH = 8
PERIOD_S = 60
STATS_PERIOD_S = 300
"""Captured data arrives in files every few minutes; five-minute points read better."""
MAX_FEATURE_WIDGETS = 30
"""CloudWatch allows 500 metrics per widget and 2,500 per dashboard; beyond this many
features the stats dashboard shows the first ones and says so, instead of failing
PutDashboard."""


def _grid(widgets: list[dict[str, Any]]) -> dict[str, Any]:
    """Lay widgets out left to right in rows of 24 columns (a wider one starts a row)."""
    x = y = 0
    row_height = 0
    for widget in widgets:
        if x + widget["width"] > 24:
            x, y, row_height = 0, y + row_height, 0
        widget["x"], widget["y"] = x, y
        row_height = max(row_height, widget["height"])
        x += widget["width"]
    return {"widgets": widgets}


def _text(markdown: str) -> dict[str, Any]:
    return {"type": "text", "width": 24, "height": 2, "properties": {"markdown": markdown}}


def _widget(panel: Panel, title: str, region: str, metrics: list[list[Any]], period: int,
            width: int = WIDTH) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "title": title, "region": region, "view": "timeSeries", "stacked": False,
        "period": period, "stat": panel.series[0].stat, "metrics": metrics,
        "yAxis": {"left": {"label": panel.unit, "showUnits": False}},
    }
    if panel.thresholds:
        properties["annotations"] = {"horizontal": [
            {"label": label, "value": value} for label, value in panel.thresholds]}
    return {"type": "metric", "width": width, "height": HEIGHT, "properties": properties}


def _stage(project: str, endpoint: str) -> str:
    return endpoint.removeprefix(f"{project}-")


def _dimensions(metric: catalogue.Metric, project: str, endpoint: str, variant: str,
                feature: str) -> list[str]:
    values = {"EndpointName": endpoint, "VariantName": variant, "Project": project,
              "Endpoint": endpoint, "Feature": feature}
    flat: list[str] = []
    for dimension in metric.dimensions:
        flat += [dimension, values[dimension]]
    return flat


def _line(series: Series, project: str, endpoint: str, variant: str, label: str,
          feature: str = names.PREDICTION_FEATURE, **options: Any) -> list[Any]:
    from mlops_control.monitoring import catalogue

    metric = catalogue.METRICS[series.metric]
    return [metric.namespace, metric.name,
            *_dimensions(metric, project, endpoint, variant, feature),
            {"stat": series.stat, "label": label, **options}]


def _endpoints(endpoint: str, others: Sequence[str]) -> list[str]:
    return sorted({endpoint, *others})


def _panel_widgets(panel: Panel, project: str, endpoints: list[str], variant: str,
                   features: list[str], region: str, period: int) -> list[dict[str, Any]]:
    several = len(endpoints) > 1

    def named(endpoint: str, label: str) -> str:
        return f"{_stage(project, endpoint)} {label}" if several else label

    if panel.scope == "endpoint":
        lines = [_line(s, project, e, variant, named(e, s.label))
                 for e in endpoints for s in panel.series]
        return [_widget(panel, panel.title, region, lines, period)]
    if panel.scope == "features":
        (series,) = panel.series
        lines = [_line(series, project, e, variant, named(e, f), feature=f)
                 for e in endpoints for f in features]
        return [_widget(panel, panel.title, region, lines, period)] if lines else []
    # One widget per feature: the mean, and the mean plus and minus one standard deviation
    # (metric math on the hidden spread series).
    mean, spread = panel.series
    widgets = []
    for feature in features:
        lines = []
        for i, e in enumerate(endpoints):
            m, s = f"m{i}", f"s{i}"
            lines += [
                _line(mean, project, e, variant, named(e, "mean"), feature=feature, id=m),
                _line(spread, project, e, variant, named(e, "std"), feature=feature, id=s,
                      visible=False),
                [{"expression": f"{m} - {s}", "label": named(e, "mean - std"),
                  "id": f"lo{i}"}],
                [{"expression": f"{m} + {s}", "label": named(e, "mean + std"),
                  "id": f"hi{i}"}],
            ]
        widgets.append(_widget(panel, panel.title.format(feature=feature), region, lines,
                               period, width=FEATURE_WIDTH))
    return widgets


def metrics_dashboard(project: str, endpoint: str, variant: str, region: str, *,
                      endpoints: Sequence[str] = ()) -> dict[str, Any]:
    """Infrastructure of ``endpoint`` (and the project's other ``endpoints``), variant
    ``variant``: requests, errors, latency, CPU, memory, disk. Latencies are in microseconds
    as SageMaker reports them; utilisations are percentages (CPU can exceed 100 on
    multi-core instances)."""
    from mlops_control.monitoring import definition

    shown = _endpoints(endpoint, endpoints)
    board = definition.METRICS
    widgets = [_text(f"# {board.name(project)}\n{', '.join(f'`{e}`' for e in shown)} "
                     f"(variant `{variant}`): {board.summary}, as SageMaker reports them.")]
    for panel in board.panels:
        widgets += _panel_widgets(panel, project, shown, variant, [], region, PERIOD_S)
    return _grid(widgets)


def stats_dashboard(project: str, endpoint: str, features: list[str], region: str, *,
                    endpoints: Sequence[str] = ()) -> dict[str, Any]:
    """Inputs and outputs of ``endpoint`` (and the project's other ``endpoints``) over time,
    from captured data: the predicted rows and the predictions' distribution, drift and the
    share missing per feature, and each feature's mean and spread."""
    from mlops_control.monitoring import definition, stats

    shown = _endpoints(endpoint, endpoints)
    board = definition.STATS
    features = list(features)
    visible = features[:MAX_FEATURE_WIDGETS]
    note = "" if len(features) <= MAX_FEATURE_WIDGETS else (
        f" Showing the first {MAX_FEATURE_WIDGETS} of {len(features)} features.")
    widgets = [_text(
        f"# {board.name(project)}\n{', '.join(f'`{e}`' for e in shown)}: {board.summary}, "
        f"from captured requests (namespace `{names.STATS_NAMESPACE}`). Drift is the "
        f"population stability index against the training data: below "
        f"{stats.PSI_MODERATE} stable, above {stats.PSI_MAJOR} "
        f"shifted.{note}")]
    for panel in board.panels:
        widgets += _panel_widgets(panel, project, shown, names.SM_VARIANT, visible, region,
                                  STATS_PERIOD_S)
    return _grid(widgets)
