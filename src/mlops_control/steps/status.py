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
           endpoint: str | None, message: str, clock: Callable[[], str] = now_iso,
           stage: str | None = None) -> None:
    """Set ``deployment.status/endpoint/message/updated_at`` on one version, and, when
    ``stage`` is given (work done on that stage's endpoint), its per-stage record
    ``deployment.<stage>.status/updated_at``, which nothing about another stage overwrites.

    MLflow sets one tag per request, so the order matters to whoever watches: the endpoint, the
    message and the per-stage record go first, so that anyone who sees the new status also sees
    why; ``updated_at`` goes last and marks the record complete.
    """
    at = clock()
    if endpoint is not None:
        registry.set_tag(project, version, names.TAG_ENDPOINT, endpoint)
    registry.set_tag(project, version, names.TAG_MESSAGE, message[:MAX_MESSAGE])
    if stage is not None:
        record_stage(registry, project, version, stage, status, at)
    registry.set_tag(project, version, names.TAG_STATUS, str(status))
    registry.set_tag(project, version, names.TAG_UPDATED_AT, at)


def record_stage(registry: RegistryClient, project: str, version: str, stage: str,
                 status: str, at: str) -> None:
    registry.set_tag(project, version, names.stage_status_tag(stage), str(status))
    registry.set_tag(project, version, names.stage_updated_at_tag(stage), at)


def clear_deploy_tag(registry: RegistryClient, project: str, version: str,
                     stage: str | None = None) -> None:
    """Remove ``deploy`` from a version (only if it still names ``stage``, when given)."""
    if stage is not None:
        current = registry.get_model_version(project, version).tags.get(names.TAG_DEPLOY)
        if current is None or current.strip() != stage:
            return
    registry.delete_tag(project, version, names.TAG_DEPLOY)


def clear_alias(registry: RegistryClient, project: str, version: str, alias: str) -> None:
    """Remove ``@alias`` if it still names ``version`` (a person may have moved it since)."""
    if alias in registry.get_model_version(project, version).aliases:
        registry.delete_alias(project, alias)
