"""Small SVG charts, drawn in Python: time series (lines, bands, stacked shares) and bars.

The local dashboards must work with no network and no JavaScript, so every chart is inline
SVG: axes with round-number ticks, a path per line (broken where a value is missing), a
circle per data point with a ``<title>`` tooltip, optional bands (mean plus and minus one
standard deviation) and threshold lines.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#dc2626", "#9333ea", "#0891b2", "#ca8a04",
           "#db2777", "#4b5563", "#65a30d")
WIDTH = 460
HEIGHT = 190
MARGIN_LEFT = 52
MARGIN_RIGHT = 12
MARGIN_TOP = 10
MARGIN_BOTTOM = 24
MAX_POINT_MARKERS = 240
"""Beyond this many points per line the markers would merge into the line; drop them."""

Values = Sequence[float | None]


@dataclass
class Line:
    label: str
    values: Values
    color: str
    dashed: bool = False
    band: tuple[Values, Values] | None = None
    """Lower and upper edge of a shaded band around the line."""
    markers: bool = True


@dataclass
class Threshold:
    label: str
    value: float
    color: str = "#9ca3af"


@dataclass
class Frame:
    """Maps values to pixels inside the plot area."""

    x0: float
    x1: float
    y0: float
    y1: float
    width: int = WIDTH
    height: int = HEIGHT
    ticks: list[float] = field(default_factory=list)

    def x(self, value: float) -> float:
        span = (self.x1 - self.x0) or 1.0
        return MARGIN_LEFT + (value - self.x0) / span * (self.width - MARGIN_LEFT - MARGIN_RIGHT)

    def y(self, value: float) -> float:
        span = (self.y1 - self.y0) or 1.0
        inner = self.height - MARGIN_TOP - MARGIN_BOTTOM
        return MARGIN_TOP + inner - (value - self.y0) / span * inner


def number(value: float | None) -> str:
    """A short human form: 3 significant digits, k/M for large values."""
    if value is None or not math.isfinite(value):
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:.3g}M"
    if magnitude >= 1e4:
        return f"{value / 1e3:.3g}k"
    if magnitude >= 100 or value == 0:
        return f"{value:.0f}"
    return f"{value:.3g}"


def nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    """Round-number ticks covering [low, high] (steps of 1, 2, 2.5 or 5 times a power of ten)."""
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value < high + step * 0.5:
        ticks.append(round(value, 12))
        value += step
    return ticks


def _extent(lines: Sequence[Line], thresholds: Sequence[Threshold],
            floor_zero: bool) -> tuple[float, float] | None:
    found: list[float] = []
    for line in lines:
        found += [v for v in line.values if v is not None and math.isfinite(v)]
        if line.band:
            for edge in line.band:
                found += [v for v in edge if v is not None and math.isfinite(v)]
    if not found:
        return None
    found += [t.value for t in thresholds]
    low, high = min(found), max(found)
    if floor_zero and low >= 0:
        low = 0.0
    if high == low:
        high = low + (abs(low) * 0.1 or 1.0)
    return low, high


def _axes(frame: Frame, times: Sequence[float], unit: str) -> list[str]:
    parts = [f'<rect class="plot" x="{MARGIN_LEFT}" y="{MARGIN_TOP}" '
             f'width="{frame.width - MARGIN_LEFT - MARGIN_RIGHT}" '
             f'height="{frame.height - MARGIN_TOP - MARGIN_BOTTOM}" fill="#ffffff" '
             f'stroke="#e5e7eb"/>']
    for tick in frame.ticks:
        y = frame.y(tick)
        parts.append(f'<line x1="{MARGIN_LEFT}" x2="{frame.width - MARGIN_RIGHT}" '
                     f'y1="{y:.1f}" y2="{y:.1f}" stroke="#f1f5f9"/>')
        parts.append(f'<text x="{MARGIN_LEFT - 4}" y="{y + 3:.1f}" text-anchor="end" '
                     f'class="tick">{escape(number(tick))}</text>')
    if times:
        span = times[-1] - times[0]
        fmt = "%H:%M:%S" if span < 600 else "%H:%M" if span < 86400 else "%a %H:%M"
        for i in range(5):
            moment = times[0] + (times[-1] - times[0]) * i / 4
            x = frame.x(moment)
            anchor = "start" if i == 0 else "end" if i == 4 else "middle"
            parts.append(f'<text x="{x:.1f}" y="{frame.height - 6}" text-anchor="{anchor}" '
                         f'class="tick">{time.strftime(fmt, time.localtime(moment))}</text>')
    parts.append(f'<text x="10" y="{MARGIN_TOP + 4}" class="unit" transform="rotate(-90 10 '
                 f'{MARGIN_TOP + 4})" text-anchor="end">{escape(unit)}</text>')
    return parts


def _path(points: list[tuple[float, float] | None]) -> str:
    commands, pen_down = [], False
    for point in points:
        if point is None:
            pen_down = False
            continue
        commands.append(f"{'L' if pen_down else 'M'}{point[0]:.1f},{point[1]:.1f}")
        pen_down = True
    return " ".join(commands)


def time_chart(times: Sequence[float], lines: Sequence[Line], *, unit: str,
               thresholds: Sequence[Threshold] = (), floor_zero: bool = True,
               width: int = WIDTH, height: int = HEIGHT) -> str:
    """A time-series chart; an empty one says so instead of drawing axes over nothing."""
    extent = _extent(lines, thresholds, floor_zero)
    if extent is None or not times:
        return _empty(width, height)
    ticks = nice_ticks(*extent)
    frame = Frame(times[0], times[-1], min(ticks[0], extent[0]), max(ticks[-1], extent[1]),
                  width, height, ticks)
    parts = _axes(frame, times, unit)
    for line in lines:
        if line.band:
            low, high = line.band
            upper = [(frame.x(t), frame.y(h)) for t, h in zip(times, high, strict=True)
                     if h is not None]
            lower = [(frame.x(t), frame.y(lo)) for t, lo in zip(times, low, strict=True)
                     if lo is not None]
            if upper and lower:
                outline = upper + lower[::-1]
                parts.append('<polygon class="band" points="' + " ".join(
                    f"{x:.1f},{y:.1f}" for x, y in outline) + f'" fill="{line.color}" '
                    'fill-opacity="0.15" stroke="none"/>')
    for threshold in thresholds:
        y = frame.y(threshold.value)
        parts.append(f'<line class="threshold" x1="{MARGIN_LEFT}" '
                     f'x2="{width - MARGIN_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
                     f'stroke="{threshold.color}" stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{width - MARGIN_RIGHT - 2}" y="{y - 3:.1f}" '
                     f'text-anchor="end" class="tick">{escape(threshold.label)}</text>')
    for line in lines:
        points = [None if v is None else (frame.x(t), frame.y(v))
                  for t, v in zip(times, line.values, strict=True)]
        dash = ' stroke-dasharray="6 4"' if line.dashed else ""
        parts.append(f'<path class="series" d="{_path(points)}" fill="none" '
                     f'stroke="{line.color}" stroke-width="1.8"{dash}>'
                     f'<title>{escape(line.label)}</title></path>')
        present = [(t, v, p) for t, v, p in zip(times, line.values, points, strict=True)
                   if p is not None]
        if line.markers and len(present) <= MAX_POINT_MARKERS:
            for moment, value, point in present:
                assert point is not None and value is not None
                label = (f"{time.strftime('%H:%M:%S', time.localtime(moment))} "
                         f"{line.label}: {number(value)} {unit}")
                parts.append(f'<circle class="point" cx="{point[0]:.1f}" cy="{point[1]:.1f}" '
                             f'r="2.2" fill="{line.color}"><title>{escape(label)}</title>'
                             f'</circle>')
    return _svg(width, height, parts)


def stacked_chart(times: Sequence[float], layers: Sequence[Line], *, unit: str,
                  width: int = WIDTH, height: int = HEIGHT) -> str:
    """Shares that add up to 1 per point (e.g. the share of each predicted class), stacked."""
    if not times or not any(v is not None for layer in layers for v in layer.values):
        return _empty(width, height)
    frame = Frame(times[0], times[-1], 0.0, 1.0, width, height, [0.0, 0.25, 0.5, 0.75, 1.0])
    parts = _axes(frame, times, unit)
    base = [0.0] * len(times)
    for layer in layers:
        top = [b + (v or 0.0) for b, v in zip(base, layer.values, strict=True)]
        present = [i for i, v in enumerate(layer.values) if v is not None]
        # One polygon per run of consecutive points, so gaps stay gaps.
        for run in _runs(present):
            outline = ([(frame.x(times[i]), frame.y(top[i])) for i in run]
                       + [(frame.x(times[i]), frame.y(base[i])) for i in reversed(run)])
            parts.append('<polygon class="series" points="' + " ".join(
                f"{x:.1f},{y:.1f}" for x, y in outline) + f'" fill="{layer.color}" '
                f'fill-opacity="0.75" stroke="{layer.color}"><title>{escape(layer.label)}'
                '</title></polygon>')
        for i in present:
            label = (f"{time.strftime('%H:%M:%S', time.localtime(times[i]))} {layer.label}: "
                     f"{number(layer.values[i])}")
            parts.append(f'<circle class="point" cx="{frame.x(times[i]):.1f}" '
                         f'cy="{frame.y(top[i]):.1f}" r="1.6" fill="{layer.color}">'
                         f'<title>{escape(label)}</title></circle>')
        base = top
    return _svg(width, height, parts)


def bar_chart(bars: Sequence[tuple[str, float | None, str]], *, unit: str,
              thresholds: Sequence[Threshold] = (), width: int = WIDTH,
              bar_height: int = 14) -> str:
    """Horizontal bars, one per label (e.g. drift per feature over the whole window)."""
    known = [(label, v, c) for label, v, c in bars if v is not None]
    if not known:
        return _empty(width, 60)
    label_width = 150
    height = MARGIN_TOP + MARGIN_BOTTOM + len(bars) * (bar_height + 4)
    high = max([v for _, v, _ in known] + [t.value for t in thresholds]) * 1.1 or 1.0
    inner = width - label_width - MARGIN_RIGHT

    def x(value: float) -> float:
        return label_width + value / high * inner

    parts = [f'<rect class="plot" x="{label_width}" y="{MARGIN_TOP}" width="{inner}" '
             f'height="{height - MARGIN_TOP - MARGIN_BOTTOM}" fill="#ffffff" stroke="#e5e7eb"/>']
    for i, (label, value, color) in enumerate(bars):
        y = MARGIN_TOP + i * (bar_height + 4) + 2
        parts.append(f'<text x="{label_width - 6}" y="{y + bar_height - 3}" text-anchor="end" '
                     f'class="tick">{escape(label[:24])}</text>')
        if value is None:
            parts.append(f'<text x="{label_width + 4}" y="{y + bar_height - 3}" class="tick">'
                         'too few rows</text>')
            continue
        parts.append(f'<rect class="bar" x="{label_width}" y="{y}" '
                     f'width="{max(x(value) - label_width, 1.0):.1f}" height="{bar_height}" '
                     f'fill="{color}"><title>{escape(label)}: {number(value)} {escape(unit)}'
                     f'</title></rect>')
    for threshold in thresholds:
        tx = x(threshold.value)
        parts.append(f'<line class="threshold" x1="{tx:.1f}" x2="{tx:.1f}" y1="{MARGIN_TOP}" '
                     f'y2="{height - MARGIN_BOTTOM}" stroke="{threshold.color}" '
                     f'stroke-dasharray="4 3"/>')
        parts.append(f'<text x="{tx:.1f}" y="{height - 8}" text-anchor="middle" '
                     f'class="tick">{escape(threshold.label)} {number(threshold.value)}</text>')
    return _svg(width, height, parts)


def _runs(indices: Sequence[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for i in indices:
        if runs and runs[-1][-1] == i - 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs


def _empty(width: int, height: int) -> str:
    return _svg(width, height, [
        f'<rect x="{MARGIN_LEFT}" y="{MARGIN_TOP}" width="{width - MARGIN_LEFT - MARGIN_RIGHT}" '
        f'height="{height - MARGIN_TOP - MARGIN_BOTTOM}" fill="#f9fafb" stroke="#e5e7eb"/>',
        f'<text x="{width / 2:.0f}" y="{height / 2:.0f}" text-anchor="middle" class="empty">'
        'no data in this window</text>'], css_class="chart empty-chart")


def _svg(width: int, height: int, parts: list[str], css_class: str = "chart") -> str:
    return (f'<svg class="{css_class}" xmlns="http://www.w3.org/2000/svg" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}" role="img">'
            + "".join(parts) + "</svg>")
