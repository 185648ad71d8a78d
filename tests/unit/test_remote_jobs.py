"""Waiting for a SageMaker job: each state change reported once, SageMaker's reason on failure,
a clear timeout."""

from __future__ import annotations

from mlops_control.errors import ControlCentreError
from mlops_control.remote.jobs import wait_for_job


def run(states: list[dict[str, str]], timeout_s: float = 100.0) -> tuple[list[str], object]:
    said: list[str] = []
    answers = iter(states)
    clock = iter(range(0, 10_000, 10))
    try:
        result: object = wait_for_job(lambda: next(answers), "JobStatus", "baseline job b",
                                      poll_s=10, timeout_s=timeout_s, sleep=lambda s: None,
                                      clock=lambda: next(clock), progress=said.append)
    except ControlCentreError as exc:
        result = exc
    return said, result


def test_a_completed_job_is_returned_with_each_state_reported_once():
    said, result = run([{"JobStatus": "InProgress"}, {"JobStatus": "InProgress"},
                        {"JobStatus": "Completed", "Output": "s3://x"}])
    assert said == ["baseline job b: InProgress", "baseline job b: Completed"]
    assert result == {"JobStatus": "Completed", "Output": "s3://x"}


def test_a_failed_job_raises_with_sagemakers_reason():
    _, result = run([{"JobStatus": "Failed", "ExitMessage": "no such column 'x'"}])
    assert isinstance(result, ControlCentreError)
    assert str(result) == "baseline job b Failed: no such column 'x'"
    _, result = run([{"JobStatus": "Stopped"}])
    assert str(result) == "baseline job b Stopped: no reason given"


def test_a_job_that_never_ends_times_out_naming_its_state():
    _, result = run([{"JobStatus": "InProgress"}] * 10, timeout_s=30)
    assert str(result) == "baseline job b still InProgress after 30s"
