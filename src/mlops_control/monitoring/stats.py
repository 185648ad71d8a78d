"""Feature statistics and drift, in pure Python.

Pure Python because the capture-stats Lambda has no numpy; the training job and the serving
observer use :mod:`fast_stats`, numpy functions that give the same numbers (a test holds the
two together). This module is the definition of every statistic.

A numeric feature is summarised by its count of present values, missing count, mean, standard
deviation (population, ddof=0), min, max, and a histogram whose bins are the deciles of the
training data. Live values are counted in the same bins and compared with the population
stability index:

    PSI = sum over bins of (a_i - e_i) * ln(a_i / e_i)

where ``e_i`` and ``a_i`` are the training and live shares of bin ``i``. Each share is
smoothed with half a count per bin (``(count + 0.5) / (total + 0.5 * bins)``), so an empty
bin contributes a finite amount instead of infinity. Reading it (the usual credit-scoring
thresholds): below 0.1 the feature is stable, 0.1 to 0.25 it has moved, above 0.25 it has
shifted and the model sees data unlike its training data.

PSI is biased upwards on small samples: with ``k`` bins and ``n`` live rows it is about
``(k - 1) / n`` even when nothing changed (0.09 at 100 rows, 0.009 at 1,000). Drift is
therefore only reported from :data:`MIN_DRIFT_ROWS` rows on.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

BINS = 10
PSI_MODERATE = 0.1
PSI_MAJOR = 0.25
SMOOTHING = 0.5
MIN_DRIFT_ROWS = 100
EDGE_SAMPLE = 100_000
"""Bin edges come from at most this many values (every k-th present value, in order): the
deciles of 100,000 values are as good as those of millions, and sorting millions is what
would make the training job slow. The counts always cover every value."""
STATS_FORMAT = 1
"""Version of the training statistics document (``control/training_stats.json``)."""


def to_number(value: Any) -> float | None:
    """A value as a float, or None when it is missing: absent, blank, NaN or infinite (an
    infinite input is as useless to a model as an absent one). Booleans count as 0/1 and
    numeric strings as numbers (CSV captures carry text). None too for text like ``"red"``:
    :func:`is_text` tells that apart."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def is_text(value: Any) -> bool:
    """A present value that is no number at all: a category."""
    if value is None or isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return not (isinstance(value, str) and not value.strip())
    return False


def is_missing(value: Any) -> bool:
    """Absent, blank, NaN or infinite (see :func:`to_number`); text is present."""
    return not is_text(value) and to_number(value) is None


@dataclass
class Moments:
    """Count, mean, sum of squared deviations, min and max of the present values, plus the
    missing count; mergeable (Chan et al.), so per-interval moments add up exactly."""

    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    minimum: float = math.inf
    maximum: float = -math.inf
    missing: int = 0

    def add(self, value: float | None) -> None:
        if value is None:
            self.missing += 1
            return
        self.count += 1
        delta = value - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (value - self.mean)
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)

    def merge(self, other: Moments) -> Moments:
        merged = Moments(missing=self.missing + other.missing)
        n = self.count + other.count
        if n:
            delta = other.mean - self.mean
            merged.count = n
            merged.mean = self.mean + delta * other.count / n
            merged.m2 = self.m2 + other.m2 + delta * delta * self.count * other.count / n
            merged.minimum = min(self.minimum, other.minimum)
            merged.maximum = max(self.maximum, other.maximum)
        return merged

    @property
    def rows(self) -> int:
        return self.count + self.missing

    @property
    def std(self) -> float | None:
        return math.sqrt(max(self.m2, 0.0) / self.count) if self.count else None

    @property
    def missing_share(self) -> float | None:
        return self.missing / self.rows if self.rows else None

    def as_dict(self) -> dict[str, Any]:
        present = self.count > 0
        return {"count": self.count, "missing": self.missing,
                "mean": self.mean if present else None, "m2": self.m2,
                "min": self.minimum if present else None,
                "max": self.maximum if present else None}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Moments:
        present = raw.get("count", 0) > 0
        return cls(count=int(raw.get("count", 0)), mean=float(raw.get("mean") or 0.0),
                   m2=float(raw.get("m2") or 0.0),
                   minimum=float(raw["min"]) if present else math.inf,
                   maximum=float(raw["max"]) if present else -math.inf,
                   missing=int(raw.get("missing", 0)))


def moments(values: Iterable[float | None]) -> Moments:
    result = Moments()
    for value in values:
        result.add(value)
    return result


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """The ``q`` quantile with linear interpolation, computed exactly as numpy's default
    (``method="linear"``, including its lerp), so both implementations find the same edges."""
    n = len(sorted_values)
    index = q * (n - 1)
    below = math.floor(index)
    above = min(below + 1, n - 1)
    t = index - below
    a, b = sorted_values[below], sorted_values[above]
    diff = b - a
    return b - diff * (1 - t) if t >= 0.5 else a + diff * t


def decile_edges(present: Sequence[float], bins: int = BINS) -> list[float]:
    """The inner bin edges: the 1/bins ... (bins-1)/bins quantiles, without repeats (a
    feature with few distinct values gets fewer bins). Bin ``i`` holds values in
    ``[edges[i-1], edges[i])``; the first and last bins are open-ended."""
    if not present:
        return []
    step = -(-len(present) // EDGE_SAMPLE)
    ordered = sorted(present[::step])
    return sorted({quantile(ordered, i / bins) for i in range(1, bins)})


def bin_of(edges: Sequence[float], value: float) -> int:
    return bisect.bisect_right(edges, value)


def histogram(edges: Sequence[float], values: Iterable[float | None]) -> list[int]:
    """Counts of the present values in the ``len(edges) + 1`` bins."""
    counts = [0] * (len(edges) + 1)
    for value in values:
        if value is not None:
            counts[bisect.bisect_right(edges, value)] += 1
    return counts


def psi(expected: Sequence[float], actual: Sequence[float],
        smoothing: float = SMOOTHING) -> float:
    """Population stability index of ``actual`` counts against ``expected`` counts (same
    bins; see the module docstring for the formula and the smoothing)."""
    if len(expected) != len(actual):
        raise ValueError(f"PSI needs the same bins: {len(expected)} expected counts, "
                         f"{len(actual)} actual")
    k = len(expected)
    total_e = sum(expected) + smoothing * k
    total_a = sum(actual) + smoothing * k
    if total_e <= 0 or total_a <= 0:
        raise ValueError("PSI needs counts on both sides")
    value = 0.0
    for e, a in zip(expected, actual, strict=True):
        share_e = (e + smoothing) / total_e
        share_a = (a + smoothing) / total_a
        if share_e > 0 and share_a > 0:
            value += (share_a - share_e) * math.log(share_a / share_e)
    return value


def drift_level(value: float | None) -> str:
    """``stable`` (< 0.1), ``moderate`` (0.1 to 0.25), ``major`` (> 0.25) or ``unknown``."""
    if value is None:
        return "unknown"
    if value > PSI_MAJOR:
        return "major"
    if value >= PSI_MODERATE:
        return "moderate"
    return "stable"


def drift(reference: Mapping[str, Any], live_counts: Sequence[float]) -> float | None:
    """PSI of live bin counts against a feature's training summary, or None when there are
    too few live rows to tell (see :data:`MIN_DRIFT_ROWS`) or no histogram to compare with."""
    expected = reference.get("counts")
    if (not expected or not sum(expected) or sum(live_counts) < MIN_DRIFT_ROWS
            or len(expected) != len(live_counts)):
        return None
    return psi(expected, live_counts)


def summarize(values: Sequence[Any], bins: int = BINS) -> dict[str, Any]:
    """One feature's entry of the training statistics. A feature is numeric unless some value
    is text; a categorical feature gets its count and missing share only (PSI is computed for
    numeric features)."""
    if any(is_text(v) for v in values):
        missing = sum(1 for v in values if is_missing(v))
        return {"kind": "categorical", "count": len(values) - missing, "missing": missing,
                "missing_share": missing / len(values)}
    present = [n for n in map(to_number, values) if n is not None]
    m = moments(present)
    edges = decile_edges(present, bins)
    return {"kind": "numeric", "count": m.count, "missing": len(values) - m.count,
            "missing_share": (len(values) - m.count) / len(values) if values else None,
            "mean": m.mean if m.count else None, "std": m.std,
            "min": m.minimum if m.count else None, "max": m.maximum if m.count else None,
            "edges": edges, "counts": histogram(edges, present)}


def training_stats(columns: Mapping[str, Sequence[Any]], target: Sequence[Any] | None,
                   bins: int = BINS) -> dict[str, Any]:
    """The training statistics document of a data set given column by column."""
    rows = len(next(iter(columns.values()))) if columns else 0
    return {"format": STATS_FORMAT, "rows": rows, "bins": bins,
            "feature_order": list(columns),
            "features": {name: summarize(values, bins) for name, values in columns.items()},
            "target": summarize(target, bins) if target is not None else None}
