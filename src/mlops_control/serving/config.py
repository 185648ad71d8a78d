"""The scoring server's settings, read once from the environment (names in :mod:`names`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TypeVar

from mlops_control import names

T = TypeVar("T", int, float)

SAGEMAKER_MAX_BODY_BYTES = 6 * 1024 * 1024
"""SageMaker real-time endpoints refuse larger payloads; the same limit locally means a request
that works here works there."""


@dataclass(frozen=True)
class ServingConfig:
    max_body_bytes: int = SAGEMAKER_MAX_BODY_BYTES
    keepalive_s: float = 60.0
    """Idle kept-alive connections stay open a minute: clients that pool connections (SageMaker's
    front end, load balancers) rarely have one closed under them while they reuse it."""
    max_batch_rows: int = 1024
    shutdown_timeout_s: float = 30.0
    observer: str | None = None
    headerless_csv: bool = False
    """CSV bodies whose first line does not name the model's columns are rows in the
    signature's column order: what Batch Transform sends after the first mini-batch of a file
    split by line."""

    @classmethod
    def from_env(cls) -> ServingConfig:
        env = os.environ
        return cls(
            max_body_bytes=_number(names.ENV_SERVING_MAX_BODY_BYTES, cls.max_body_bytes, int),
            keepalive_s=_number(names.ENV_SERVING_KEEPALIVE_S, cls.keepalive_s, float),
            max_batch_rows=_number(names.ENV_SERVING_MAX_BATCH_ROWS, cls.max_batch_rows, int),
            shutdown_timeout_s=_number(names.ENV_SERVING_SHUTDOWN_TIMEOUT_S,
                                       cls.shutdown_timeout_s, float),
            observer=env.get(names.ENV_SERVING_OBSERVER) or None,
            headerless_csv=env.get(names.ENV_SERVING_HEADERLESS_CSV, "") in ("1", "true"),
        )


def default_workers() -> int:
    """One worker per core, unless SageMaker's variable says otherwise."""
    configured = _number(names.ENV_SAGEMAKER_WORKERS, 0, int)
    if configured > 0:
        return configured
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _number(name: str, default: T, kind: type[T]) -> T:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {raw!r}")
    return value
