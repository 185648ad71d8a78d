"""Recorded AWS event payloads, loaded by :func:`load`."""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


@cache
def _read(name: str) -> dict[str, Any]:
    return json.loads((HERE / f"{name}.json").read_text())


def load(name: str) -> dict[str, Any]:
    """A fresh copy of ``tests/events/<name>.json`` (tests may change it freely)."""
    return copy.deepcopy(_read(name))
