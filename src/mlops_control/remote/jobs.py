"""Waiting for a SageMaker job (Batch Transform, Processing) to end, with its state changes
reported as they happen."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mlops_control.errors import ControlCentreError

RUNNING = frozenset({"InProgress", "Stopping"})


def wait_for_job(describe: Callable[[], dict[str, Any]], status_key: str, what: str, *,
                 poll_s: float, timeout_s: float, sleep: Callable[[float], None],
                 clock: Callable[[], float],
                 progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
    """Describe the job until ``described[status_key]`` is ``Completed`` (returned) or ends
    otherwise (:class:`ControlCentreError` with SageMaker's reason); ``what`` names the job
    in messages, e.g. ``"transform job <name>"``."""
    deadline = clock() + timeout_s
    last = ""
    while True:
        described = describe()
        state = described[status_key]
        if state != last:
            progress(f"{what}: {state}")
            last = state
        if state == "Completed":
            return described
        if state not in RUNNING:
            reason = (described.get("FailureReason") or described.get("ExitMessage")
                      or "no reason given")
            raise ControlCentreError(f"{what} {state}: {reason}")
        if clock() > deadline:
            raise ControlCentreError(f"{what} still {state} after {timeout_s:.0f}s")
        sleep(poll_s)
