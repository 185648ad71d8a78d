"""The one small interface a place to run models implements: local processes or SageMaker."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from mlops_control.errors import ControlCentreError


class DeploymentFailed(ControlCentreError):
    """The new version could not be made live; the previous one still serves."""


@dataclass(frozen=True)
class DeployTarget:
    project: str
    stage: str
    version: str
    endpoint: str
    run_id: str | None
    smoke_payload: dict[str, Any] | None
    """The contract's test slice, as an MLflow scoring request, from the version's run."""


class Backend(Protocol):
    """Where endpoints live. Every method is idempotent."""

    def live(self, project: str) -> dict[str, str]:
        """``{stage: version}`` for each endpoint of ``project`` that serves a version."""
        ...

    def deploy(self, target: DeployTarget) -> None:
        """Load the version beside the live one, smoke-test it, then switch with no failed
        request. Raise :class:`DeploymentFailed` with the reason; the live version must keep
        serving."""
        ...

    def retire(self, project: str, stage: str) -> None:
        """Remove the endpoint (and its dashboards); nothing if it does not exist."""
        ...
