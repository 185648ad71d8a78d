"""The smoke test every deployment must pass before it takes traffic: the contract's test
slice sent to the new version, answered with one prediction per row."""

from __future__ import annotations

import json
import math
from typing import Any

from mlops_control.steps.backend import DeploymentFailed


def rows_in(payload: dict[str, Any]) -> int:
    if "dataframe_split" in payload:
        return len(payload["dataframe_split"].get("data", []))
    for key in ("dataframe_records", "instances", "inputs"):
        if key in payload and isinstance(payload[key], list):
            return len(payload[key])
    raise DeploymentFailed("the smoke test payload holds no rows")


def check(status: int, body: bytes | str, expected_rows: int) -> None:
    """Raise :class:`DeploymentFailed` unless the answer is 200 with one finite prediction
    per row."""
    text = body.decode(errors="replace") if isinstance(body, bytes) else body
    if status != 200:
        raise DeploymentFailed(f"smoke test answered HTTP {status}: {text[:300]}")
    try:
        answer = json.loads(text)
    except ValueError:
        raise DeploymentFailed(f"smoke test answer is not JSON: {text[:200]}") from None
    predictions = answer.get("predictions") if isinstance(answer, dict) else answer
    if not isinstance(predictions, list):
        raise DeploymentFailed("smoke test answer has no 'predictions' list")
    if len(predictions) != expected_rows:
        raise DeploymentFailed(
            f"smoke test sent {expected_rows} rows but got {len(predictions)} predictions")
    for value in _leaves(predictions):
        if isinstance(value, float) and not math.isfinite(value):
            raise DeploymentFailed("smoke test predictions contain NaN or infinity")


def _leaves(value: Any) -> Any:
    if isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    else:
        yield value
