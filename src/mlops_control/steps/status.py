"""Writing what happened into the registry: the control centre's own tags."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from mlops_control import names
from mlops_control.registry import RegistryClient

MAX_MESSAGE = 4000  # MLflow tag values hold 5000 characters at most


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def record(registry: RegistryClient, project: str, version: str, status: str,
           endpoint: str | None, message: str, clock: Callable[[], str] = now_iso) -> None:
    """Set ``deployment.status/endpoint/message/updated_at`` on one version.

    MLflow sets one tag per request, so the order matters to whoever watches: the endpoint and
    the message go first, so that anyone who sees the new status also sees why; ``updated_at``
    goes last and marks the record complete.
    """
    if endpoint is not None:
        registry.set_tag(project, version, names.TAG_ENDPOINT, endpoint)
    registry.set_tag(project, version, names.TAG_MESSAGE, message[:MAX_MESSAGE])
    registry.set_tag(project, version, names.TAG_STATUS, str(status))
    registry.set_tag(project, version, names.TAG_UPDATED_AT, clock())


def clear_deploy_tag(registry: RegistryClient, project: str, version: str,
                     stage: str | None = None) -> None:
    """Remove ``deploy`` from a version (only if it still names ``stage``, when given)."""
    if stage is not None:
        current = registry.get_model_version(project, version).tags.get(names.TAG_DEPLOY)
        if current is None or current.strip() != stage:
            return
    registry.delete_tag(project, version, names.TAG_DEPLOY)
