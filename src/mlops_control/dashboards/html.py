"""The local dashboards: ``<project>_metrics`` and ``<project>_stats`` as HTML pages with inline
SVG charts, drawn from the local metrics store (:mod:`mlops_control.monitoring.store`).

The panels are those of :mod:`mlops_control.monitoring.definition`, the very list the
CloudWatch bodies are made from; each catalogue metric's ``local`` measurement stands in for
the SageMaker one (:mod:`mlops_control.monitoring.series`). A few things only exist here and
are marked so: process memory in megabytes, the training data as a reference line, drift per
feature over the whole window as bars. Self-contained pages: no script, no external file.

Served by the control centre at ``/dashboards/`` (index), ``/dashboards/<project>`` (both
dashboards), ``/dashboards/<project>/metrics`` and ``/dashboards/<project>/stats``, with
``?window=15m|1h|6h|24h|7d`` and ``?endpoint=<name>``; or written to files (:func:`write`).
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

from mlops_control import names
from mlops_control.dashboards import svg
from mlops_control.monitoring import catalogue, definition, stats
from mlops_control.monitoring.definition import Panel
from mlops_control.monitoring.series import EndpointSeries, Values, Window, value
from mlops_control.monitoring.store import MetricsStore

PREFIX = "/dashboards"
WINDOWS = {"auto": 0, "15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 24 * 3600,
           "7d": 7 * 24 * 3600}
DEFAULT_WINDOW = "auto"
"""From the project's first recorded interval of the last day (at least five minutes), so a
fresh endpoint's few minutes fill the charts."""
AUTO_MIN_S = 60
AUTO_MAX_S = 24 * 3600
BUCKETS = 60
MIN_BUCKET_S = 5.0
"""The workers' flush interval: a finer bucket would hold no interval at all."""
REFRESH_S = 10
TOP_DRIFTING = 5
TOP_MISSING = 8
DRIFT_COLORS = {"stable": "#16a34a", "moderate": "#ca8a04", "major": "#dc2626",
                "unknown": "#9ca3af"}


@dataclass(frozen=True)
class EndpointInfo:
    """What the control centre knows of an endpoint now (the store knows its past)."""

    endpoint: str
    project: str
    version: str | None = None
    running: bool = False
    url: str | None = None


@dataclass
class View:
    project: str
    endpoints: list[str]
    window_name: str
    window: Window
    series: dict[str, EndpointSeries]
    info: dict[str, EndpointInfo]
    static: bool


def stage_of(project: str, endpoint: str) -> str | None:
    stage = endpoint.removeprefix(f"{project}-")
    if endpoint.startswith(f"{project}-") and names.STAGE_PATTERN.match(stage):
        return stage
    return None


def _endpoints(store: MetricsStore, project: str, known: Sequence[EndpointInfo]) -> list[str]:
    """The project's ``<project>-<stage>`` endpoints, live or recorded, production first."""
    found = {e for e, p, _ in store.endpoints() if p == project}
    found |= {i.endpoint for i in known if i.project == project}
    found = {e for e in found if stage_of(project, e)}
    return sorted(found, key=lambda e: (stage_of(project, e) != "production", e))


def load(store: MetricsStore, project: str, window_name: str, now: float,
         known: Sequence[EndpointInfo], static: bool = False) -> View:
    endpoints = _endpoints(store, project, known)
    seconds = float(WINDOWS.get(window_name, AUTO_MAX_S))
    if not seconds:
        first = store.first_ended(endpoints, now - AUTO_MAX_S)
        seconds = max(AUTO_MIN_S, now - first + MIN_BUCKET_S) if first else AUTO_MIN_S
    window = Window(now - seconds, now, max(1, min(BUCKETS, int(seconds // MIN_BUCKET_S))))
    series = {}
    for endpoint in endpoints:
        intervals = store.intervals([endpoint], window.start, now)
        versions = {i.version for i in intervals if i.version}
        references = {v: store.training_stats(project, v) for v in versions}
        series[endpoint] = EndpointSeries(intervals, window, references)
    info = {i.endpoint: i for i in known if i.project == project}
    return View(project, endpoints, window_name, window, series, info, static)


# --- pages ------------------------------------------------------------------------------
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;background:#f3f4f6;
color:#111827}
header{background:#111827;color:#f9fafb;padding:14px 24px;display:flex;gap:24px;
align-items:baseline;flex-wrap:wrap}
header h1{font-size:20px;margin:0}header a{color:#93c5fd}
nav a{margin-right:10px;color:#93c5fd;text-decoration:none}nav a.on{color:#fff;font-weight:600;
text-decoration:underline}
main{padding:16px 24px}h2{font-size:18px;margin:18px 0 4px}p.sub{color:#4b5563;margin:0 0 10px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:14px}
.grid.small{grid-template-columns:repeat(auto-fill,minmax(330px,1fr))}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:10px 12px}
.card h3{font-size:14px;margin:0 0 4px}.card .note{color:#6b7280;font-size:12px;margin:0 0 6px}
.legend{font-size:12px;color:#374151;margin-top:4px}.legend span{margin-right:12px;
white-space:nowrap}.legend i{display:inline-block;width:10px;height:10px;border-radius:2px;
margin-right:4px;vertical-align:-1px}
svg .tick{font-size:10px;fill:#6b7280}svg .unit{font-size:10px;fill:#6b7280}
svg .empty{font-size:12px;fill:#9ca3af}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #e5e7eb;padding:6px 10px;
text-align:left;font-size:14px}
.card svg.chart{width:100%;height:auto}
"""


def _page(title: str, body: str, static: bool) -> str:
    refresh = "" if static else f'<meta http-equiv="refresh" content="{REFRESH_S}">'
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">{refresh}'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>{body}"
            f"</body></html>")


def _legend(lines: Sequence[svg.Line]) -> str:
    """Entries for the lines that have data (an empty chart says so, without a legend)."""
    return '<div class="legend">' + "".join(
        f'<span><i style="background:{line.color}"></i>{escape(line.label)}</span>'
        for line in lines if any(v is not None for v in line.values)) + "</div>"


def _card(title: str, chart: str, note: str = "", legend: str = "") -> str:
    note_html = f'<p class="note">{escape(note)}</p>' if note else ""
    return f'<div class="card"><h3>{escape(title)}</h3>{note_html}{chart}{legend}</div>'


def _color(i: int) -> str:
    return svg.PALETTE[i % len(svg.PALETTE)]


def _local_unit(panel: Panel) -> str:
    metric = catalogue.METRICS[panel.series[0].metric]
    if metric.local == "latency":
        return "milliseconds"
    if metric.local in ("requests", "errors_4xx", "errors_5xx"):
        return panel.unit
    if panel.key == "rows":
        return "rows per minute"
    return panel.unit


def _endpoint_panel(view: View, panel: Panel) -> str:
    metric = catalogue.METRICS[panel.series[0].metric]
    if metric.local is None:
        return _card(panel.title, '<p class="note">SageMaker only: ' + escape(
            metric.description) + ".</p>")
    times = view.window.times()
    lines = []
    several = len(view.endpoints) > 1
    for e_index, endpoint in enumerate(view.endpoints):
        for s_index, series in enumerate(panel.series):
            local = catalogue.METRICS[series.metric].local
            assert local is not None
            label = (f"{stage_of(view.project, endpoint)} {series.label}" if several
                     else series.label)
            lines.append(svg.Line(label, value(view.series[endpoint], local, series.stat),
                                  _color(s_index + 3 * e_index), dashed=e_index > 0))
    unit = _local_unit(panel)
    chart = svg.time_chart(times, lines, unit=unit)
    return _card(panel.title, chart, unit, _legend(lines))


def _memory_mb(view: View) -> str:
    times = view.window.times()
    lines = [svg.Line(stage_of(view.project, e) or e,
                      view.series[e].gauge("rss_bytes", 1 / 1e6), _color(i))
             for i, e in enumerate(view.endpoints)]
    return _card("Process memory (local only)", svg.time_chart(times, lines, unit="MB"),
                 "resident memory of the worker processes, MB", _legend(lines))


def metrics_section(view: View) -> str:
    board = definition.METRICS
    cards = []
    for panel in board.panels:
        cards.append(_endpoint_panel(view, panel))
        if panel.key == "memory":
            cards.append(_memory_mb(view))
    return (f'<section id="metrics"><h2>{escape(board.name(view.project))}</h2>'
            f'<p class="sub">{escape(_endpoint_list(view))}: {escape(board.summary)}.</p>'
            f'<div class="grid">{"".join(cards)}</div></section>')


def _endpoint_list(view: View) -> str:
    parts = []
    for endpoint in view.endpoints:
        info = view.info.get(endpoint)
        state = ("running, version " + (info.version or "?")) if info and info.running \
            else "not running"
        parts.append(f"{endpoint} ({state})")
    return ", ".join(parts) or "no endpoints yet"


def _drift_badge(value_: float | None, has_reference: bool) -> str:
    level = stats.drift_level(value_)
    text = (f"max PSI {svg.number(value_)}: {level}" if value_ is not None
            else "drift: too few rows" if has_reference else "drift: no training statistics")
    return f'<span class="badge" style="background:{DRIFT_COLORS[level]}">{escape(text)}</span>'


def stats_section(view: View, endpoint: str | None) -> str:
    board = definition.STATS
    if endpoint is None:
        return (f'<section id="stats"><h2>{escape(board.name(view.project))}</h2>'
                '<p class="sub">No endpoint has recorded anything yet.</p></section>')
    data = view.series[endpoint]
    version = data.latest_version()
    reference = data.references.get(version or "") if version else None
    features = data.features()
    drift = {f: data.window_drift(f) for f in features}
    known = [v for v in drift.values() if v is not None]
    header = (f'<section id="stats"><h2>{escape(board.name(view.project))} '
              f'{_drift_badge(max(known) if known else None, reference is not None)}</h2>'
              f'<p class="sub">{escape(endpoint)}, version {escape(version or "?")}: '
              f'{escape(board.summary)}. Drift is the population stability index against '
              f'the training data of the version served: below {stats.PSI_MODERATE} stable, '
              f'{stats.PSI_MODERATE} to {stats.PSI_MAJOR} moved, above {stats.PSI_MAJOR} '
              f'shifted ({stats.MIN_DRIFT_ROWS} rows at least).'
              f'{"" if reference else " No training statistics for this version: no drift."}'
              f'</p>{_stage_links(view, endpoint)}')
    cards = []
    for panel in board.panels:
        if panel.key == "rows":
            cards.append(_stats_lines(view, data, panel))
        elif panel.key == "predictions":
            cards.append(_predictions(view, data, panel, reference))
        elif panel.key == "drift":
            cards.append(_drift_bars(panel, features, drift))
            cards.append(_drift_over_time(view, data, panel, drift))
        elif panel.key == "missing":
            cards.append(_missing(view, data, panel, features))
    feature_cards = [_feature(view, data, f, reference, drift.get(f)) for f in features]
    return (header + f'<div class="grid">{"".join(cards)}</div>'
            f'<h2>Features</h2><p class="sub">mean with a band of one standard deviation; '
            f'dashed: the training mean</p><div class="grid small">{"".join(feature_cards)}'
            f"</div></section>")


def _stage_links(view: View, current: str) -> str:
    if view.static or len(view.endpoints) < 2:
        return ""
    links = []
    for endpoint in view.endpoints:
        query = urllib.parse.urlencode({"window": view.window_name, "endpoint": endpoint})
        css = ' class="on"' if endpoint == current else ""
        links.append(f'<a{css} href="?{query}#stats">{escape(endpoint)}</a>')
    return f'<p class="sub">endpoint: {" ".join(links)}</p>'


def _stats_lines(view: View, data: EndpointSeries, panel: Panel) -> str:
    lines = []
    for i, series in enumerate(panel.series):
        local = catalogue.METRICS[series.metric].local
        assert local is not None
        lines.append(svg.Line(series.label, value(data, local, series.stat), _color(i)))
    unit = _local_unit(panel)
    return _card(panel.title, svg.time_chart(view.window.times(), lines, unit=unit), unit,
                 _legend(lines))


def _predictions(view: View, data: EndpointSeries, panel: Panel,
                 reference: dict[str, Any] | None) -> str:
    times = view.window.times()
    counts = data.prediction_values()
    target = (reference or {}).get("target") or {}
    if any(counts):
        classes = sorted({k for c in counts if c for k in c}, key=float)
        layers = []
        for i, cls in enumerate(classes):
            shares: Values = [None if not c else c.get(cls, 0) / sum(c.values()) for c in counts]
            layers.append(svg.Line(f"predicted {svg.number(float(cls))}", shares, _color(i)))
        note = "share of each predicted value"
        if target.get("kind") == "numeric" and target.get("count"):
            note += f"; training mean of the target {svg.number(target['mean'])}"
        chart = svg.stacked_chart(times, layers, unit="share")
        return _card(panel.title, chart, note, _legend(layers))
    lines = []
    for i, series in enumerate(panel.series):
        lines.append(svg.Line(series.label, data.prediction_stat(series.stat), _color(i)))
    if target.get("kind") == "numeric" and target.get("mean") is not None:
        lines.append(svg.Line("training target mean", [target["mean"]] * len(times),
                              "#6b7280", dashed=True, markers=False))
    return _card(panel.title, svg.time_chart(times, lines, unit=panel.unit,
                                             floor_zero=False), "percentiles and mean",
                 _legend(lines))


def _thresholds(panel: Panel) -> list[svg.Threshold]:
    return [svg.Threshold(label, v) for label, v in panel.thresholds]


def _drift_bars(panel: Panel, features: list[str], drift: dict[str, float | None]) -> str:
    bars = [(f, drift[f], DRIFT_COLORS[stats.drift_level(drift[f])]) for f in features]
    return _card("Drift per feature over the window (local only)",
                 svg.bar_chart(bars, unit="PSI", thresholds=_thresholds(panel)),
                 "PSI of the window's inputs against the training data")


def _drift_over_time(view: View, data: EndpointSeries, panel: Panel,
                     drift: dict[str, float | None]) -> str:
    ranked = sorted((f for f in drift if drift[f] is not None),
                    key=lambda f: drift[f] or 0.0, reverse=True)[:TOP_DRIFTING]
    lines = [svg.Line(f, data.drift(f), _color(i)) for i, f in enumerate(ranked)]
    return _card(panel.title, svg.time_chart(view.window.times(), lines, unit=panel.unit,
                                             thresholds=_thresholds(panel)),
                 f"the {len(ranked)} features drifting most in this window, per bucket",
                 _legend(lines))


def _missing(view: View, data: EndpointSeries, panel: Panel, features: list[str]) -> str:
    per_feature = {f: data.feature_stat(f, "missing") for f in features}
    ranked = sorted(features, key=lambda f: max((v for v in per_feature[f] if v is not None),
                                                default=-1.0), reverse=True)[:TOP_MISSING]
    lines = [svg.Line(f, per_feature[f], _color(i)) for i, f in enumerate(ranked)]
    return _card(panel.title, svg.time_chart(view.window.times(), lines, unit=panel.unit),
                 f"the {len(ranked)} features most often missing", _legend(lines))


def _feature(view: View, data: EndpointSeries, feature: str,
             reference: dict[str, Any] | None, drift: float | None) -> str:
    mean = data.feature_stat(feature, "mean")
    std = data.feature_stat(feature, "std")
    low = [None if m is None or s is None else m - s for m, s in zip(mean, std, strict=True)]
    high = [None if m is None or s is None else m + s for m, s in zip(mean, std, strict=True)]
    lines = [svg.Line("mean", mean, _color(0), band=(low, high))]
    trained = ((reference or {}).get("features") or {}).get(feature) or {}
    if trained.get("mean") is not None:
        lines.append(svg.Line("training mean", [trained["mean"]] * view.window.buckets,
                              "#6b7280",
                              dashed=True, markers=False))
    chart = svg.time_chart(view.window.times(), lines, unit="value", floor_zero=False,
                           width=360, height=150)
    level = stats.drift_level(drift)
    badge = (f' <span class="badge" style="background:{DRIFT_COLORS[level]}">'
             f'PSI {svg.number(drift)}</span>' if drift is not None else "")
    return (f'<div class="card"><h3>{escape(feature)}{badge}</h3>{chart}</div>')


def _header(view: View, which: str) -> str:
    if view.static:
        return (f"<header><h1>{escape(view.project)}</h1><span>"
                f"{_span(view.window)} to {time.strftime('%H:%M:%S')}</span></header>")
    base = f"{PREFIX}/{urllib.parse.quote(view.project)}"
    tabs = [("both", base), ("metrics", f"{base}/metrics"), ("stats", f"{base}/stats")]
    tab_links = " ".join(f'<a{" class=on" if which == k else ""} href="{href}?window='
                         f'{view.window_name}">{k}</a>' for k, href in tabs)
    window_links = " ".join(
        f'<a{" class=on" if w == view.window_name else ""} href="?window={w}">{w}</a>'
        for w in WINDOWS)
    return (f'<header><h1><a href="{PREFIX}/">dashboards</a> / {escape(view.project)}</h1>'
            f"<nav>{tab_links}</nav><nav>window: {window_links}</nav>"
            f"<span>{_span(view.window)}</span>"
            f"<span>{time.strftime('%H:%M:%S')}, refreshes every {REFRESH_S}s</span></header>")


def _span(window: Window) -> str:
    minutes = (window.end - window.start) / 60
    span = f"{minutes:.0f} min" if minutes < 120 else f"{minutes / 60:.0f} h"
    step = f"{window.step:.0f}" if window.step >= 2 else svg.number(window.step)
    return f"last {span} in {window.buckets} points of {step} s"


def project_page(view: View, which: str = "both", endpoint: str | None = None) -> str:
    chosen = endpoint if endpoint in view.endpoints else (view.endpoints[0] if view.endpoints
                                                          else None)
    sections = []
    if which in ("both", "metrics"):
        sections.append(metrics_section(view))
    if which in ("both", "stats"):
        sections.append(stats_section(view, chosen))
    title = {"metrics": names.metrics_dashboard(view.project),
             "stats": names.stats_dashboard(view.project)}.get(which, view.project)
    return _page(title, _header(view, which) + f"<main>{''.join(sections)}</main>", view.static)


def index_page(store: MetricsStore, known: Sequence[EndpointInfo], now: float) -> str:
    recorded = {e: (p, last) for e, p, last in store.endpoints()}
    rows = []
    projects = sorted({p for p, _ in recorded.values()} | {i.project for i in known})
    for project in projects:
        for endpoint in _endpoints(store, project, known):
            info = next((i for i in known if i.endpoint == endpoint), None)
            last = recorded.get(endpoint, (project, None))[1]
            seen = "never" if last is None else f"{svg.number(now - last)} s ago"
            state = f"running version {info.version}" if info and info.running else "stopped"
            link = f"{PREFIX}/{urllib.parse.quote(project)}"
            rows.append(f'<tr><td><a href="{link}">{escape(project)}</a></td>'
                        f"<td>{escape(endpoint)}</td><td>{escape(state)}</td>"
                        f"<td>{escape(seen)}</td><td><a href=\"{link}/metrics\">"
                        f"{escape(names.metrics_dashboard(project))}</a> · "
                        f"<a href=\"{link}/stats\">{escape(names.stats_dashboard(project))}</a>"
                        f"</td></tr>")
    table = ("<table><tr><th>project</th><th>endpoint</th><th>now</th><th>last metrics</th>"
             "<th>dashboards</th></tr>" + "".join(rows) + "</table>") if rows else (
        "<p>No endpoint has recorded metrics yet: deploy a version (tag it "
        "<code>deploy=production</code>) and send it requests.</p>")
    return _page("dashboards", "<header><h1>dashboards</h1></header>"
                 f"<main><h2>Projects</h2>{table}</main>", static=False)


# --- serving and writing --------------------------------------------------------------------
class DashboardPages:
    """The receiver's page handler for :data:`PREFIX` (``callable(path)``)."""

    def __init__(self, store_path: Path, known: Callable[[], Sequence[EndpointInfo]],
                 clock: Callable[[], float] = time.time) -> None:
        self.store_path = store_path
        self.known = known
        self.clock = clock

    def __call__(self, raw_path: str) -> tuple[int, str, bytes]:
        parsed = urllib.parse.urlsplit(raw_path)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        parts = [urllib.parse.unquote(p) for p in
                 parsed.path.removeprefix(PREFIX).split("/") if p]
        if not self.store_path.exists():
            MetricsStore(self.store_path).close()
        store = MetricsStore(self.store_path)
        try:
            if not parts:
                return 200, "text/html; charset=utf-8", index_page(
                    store, self.known(), self.clock()).encode()
            project, which = parts[0], (parts[1] if len(parts) > 1 else "both")
            if not names.PROJECT_NAME_PATTERN.match(project) or which not in (
                    "both", "metrics", "stats") or len(parts) > 2:
                return 404, "text/plain; charset=utf-8", (
                    f"no such dashboard; try {PREFIX}/, {PREFIX}/<project>, "
                    f"{PREFIX}/<project>/metrics or {PREFIX}/<project>/stats").encode()
            window = query.get("window", DEFAULT_WINDOW)
            if window not in WINDOWS:
                window = DEFAULT_WINDOW
            view = load(store, project, window, self.clock(), self.known())
            return 200, "text/html; charset=utf-8", project_page(
                view, which, query.get("endpoint")).encode()
        finally:
            store.close()


def write(store_path: Path, out_dir: Path, project: str, known: Sequence[EndpointInfo] = (),
          window: str = DEFAULT_WINDOW, now: float | None = None) -> list[Path]:
    """Both dashboards of ``project`` as stand-alone files (no refresh, no links)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    store = MetricsStore(store_path)
    try:
        view = load(store, project, window, now or time.time(), known, static=True)
    finally:
        store.close()
    written = []
    for which, name in (("metrics", names.metrics_dashboard(project)),
                        ("stats", names.stats_dashboard(project))):
        target = out_dir / f"{name}.html"
        target.write_text(project_page(view, which))
        written.append(target)
    return written
