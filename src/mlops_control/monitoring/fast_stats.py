"""The statistics of :mod:`stats`, vectorised with numpy for whole columns at once.

The training job summarises every row it trained on and a serving worker summarises every
few seconds of traffic: in pure Python that costs about a second per million values, here a
few milliseconds (``benchmarks/results/monitoring.md``). The definitions stay in
:mod:`stats`; the tests check that both give the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mlops_control.monitoring import stats


def columns(X: Any) -> list[tuple[str, Any]]:
    """``(name, values)`` per column of a DataFrame, a 2-D array or a dict of arrays. Columns
    without names are called ``"0"``, ``"1"``, ... on every side (training, serving, capture)."""
    if hasattr(X, "columns") and hasattr(X, "__getitem__"):
        return [(str(name), X[name].to_numpy()) for name in X.columns]
    if isinstance(X, dict):
        return [(str(name), np.asarray(values)) for name, values in X.items()]
    array = np.asarray(X)
    if array.ndim == 1:
        array = array.reshape(-1, 1)
    return [(str(i), array[:, i]) for i in range(array.shape[1])]


def as_numbers(values: Any) -> np.ndarray | None:
    """A column as float64 with missing values as NaN, or None if it holds text."""
    array = np.asarray(values)
    if array.dtype.kind in "biuf":
        numbers = array.astype(np.float64, copy=False)
    elif array.dtype.kind == "O" or array.dtype.kind in "US":
        if any(stats.is_text(v) for v in array.tolist()):
            return None
        numbers = np.array([np.nan if (n := stats.to_number(v)) is None else n
                            for v in array.tolist()], dtype=np.float64)
    else:  # datetimes and the like: not monitored as numbers
        return None
    # Infinite values are missing, as in stats.to_number.
    return np.where(np.isfinite(numbers), numbers, np.nan)


def moments(numbers: np.ndarray) -> stats.Moments:
    present = numbers[~np.isnan(numbers)]
    missing = int(numbers.size - present.size)
    if not present.size:
        return stats.Moments(missing=missing)
    mean = float(present.mean())
    return stats.Moments(count=int(present.size), mean=mean,
                         m2=float(np.square(present - mean).sum()),
                         minimum=float(present.min()), maximum=float(present.max()),
                         missing=missing)


def decile_edges(present: np.ndarray, bins: int = stats.BINS) -> list[float]:
    if not present.size:
        return []
    step = -(-present.size // stats.EDGE_SAMPLE)
    qs = np.array([i / bins for i in range(1, bins)])
    return [float(v) for v in np.unique(np.quantile(present[::step], qs))]


def histogram(edges: Sequence[float], numbers: np.ndarray) -> list[int]:
    present = numbers[~np.isnan(numbers)]
    bins = np.searchsorted(np.asarray(edges, dtype=np.float64), present, side="right")
    return [int(c) for c in np.bincount(bins, minlength=len(edges) + 1)]


def summarize(values: Any, bins: int = stats.BINS) -> dict[str, Any]:
    """:func:`stats.summarize` of one column."""
    numbers = as_numbers(values)
    if numbers is None:
        return stats.summarize(np.asarray(values).tolist(), bins)
    m = moments(numbers)
    present = numbers[~np.isnan(numbers)]
    edges = decile_edges(present, bins)
    rows = int(numbers.size)
    return {"kind": "numeric", "count": m.count, "missing": m.missing,
            "missing_share": m.missing / rows if rows else None,
            "mean": m.mean if m.count else None, "std": m.std,
            "min": m.minimum if m.count else None, "max": m.maximum if m.count else None,
            "edges": edges, "counts": histogram(edges, numbers)}


def training_stats(X: Any, y: Any = None, bins: int = stats.BINS) -> dict[str, Any]:
    """:func:`stats.training_stats` of a feature matrix (and target)."""
    named = columns(X)
    rows = len(named[0][1]) if named else 0
    target = None
    if y is not None:
        target = summarize(np.asarray(y).reshape(-1) if np.ndim(y) <= 1 else
                           np.asarray(y)[:, 0], bins)
    return {"format": stats.STATS_FORMAT, "rows": rows, "bins": bins,
            "feature_order": [name for name, _ in named],
            "features": {name: summarize(values, bins) for name, values in named},
            "target": target}
