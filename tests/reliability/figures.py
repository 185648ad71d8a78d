"""Figures the reliability tests measure (cases fuzzed, faults survived, requests served during
switches, switch latency), gathered during a test run and written to
``build/reliability/figures.json`` at its end; ``python -m tests.reliability.report`` renders
them into ``docs/reliability.md``.

A run only replaces the figures it measured, so ``make test`` and ``make test-soak`` each add
theirs to the same file (for figures that are all from one run, delete it first).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
FILE = Path(os.environ.get("MLOPS_RELIABILITY_FIGURES", REPO / "build" / "reliability"
                          / "figures.json"))

SCALE = int(os.environ.get("MLOPS_FUZZ_SCALE") or 1)
"""Fuzz budgets are multiplied by this (the soak run sets 10); figures of such a run are
kept apart, under ``<key>@soak``."""

_lock = threading.Lock()


def examples(n: int) -> int:
    """Hypothesis examples for a property whose ``make test`` budget is ``n``."""
    return n * SCALE


def _key(key: str) -> str:
    return f"{key}@soak" if SCALE > 1 else key
_figures: dict[str, dict[str, Any]] = {}


def record(key: str, **values: Any) -> None:
    """Keep ``values`` under ``key`` (e.g. ``fuzz.receiver``); later calls add to it."""
    with _lock:
        _figures.setdefault(_key(key), {}).update(values)


def add(key: str, field: str, amount: int = 1) -> None:
    """Add ``amount`` to a counter (cases run, requests served)."""
    with _lock:
        entry = _figures.setdefault(_key(key), {})
        entry[field] = int(entry.get(field, 0)) + amount


def collected() -> dict[str, dict[str, Any]]:
    with _lock:
        return json.loads(json.dumps(_figures))


def save() -> Path | None:
    """Merge this run's figures into the file; nothing when this run measured none."""
    figures = collected()
    if not figures:
        return None
    FILE.parent.mkdir(parents=True, exist_ok=True)
    try:
        known: dict[str, Any] = json.loads(FILE.read_text())
    except (OSError, ValueError):
        known = {}
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    for key, values in figures.items():
        # Field by field: a run of a few tests keeps what others measured before.
        known[key] = {**known.get(key, {}), **values, "measured_at": stamp}
    tmp = FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps(known, indent=2, sort_keys=True) + "\n")
    tmp.replace(FILE)
    return FILE
