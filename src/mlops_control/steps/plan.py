"""From the registry's tags and the endpoints that exist, what must change. Pure functions.

The rules (documented in the README's control vocabulary):
- the version tagged ``deploy=<stage>`` should serve ``<project>-<stage>``; when several are,
  the one not yet serving wins (that is the new request), the highest number among them;
- ``deploy`` on a deprecated version, or on an unknown stage, is refused;
- if the live version is deprecated, roll back to the version that served that endpoint most
  recently before it, or remove the endpoint when there is none;
- a stage no version is tagged for has no endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from mlops_control import names
from mlops_control.registry import ModelVersion

STALE_DEPLOYING = timedelta(minutes=30)
"""A ``deploying`` status older than this is a deployment that died; it is retried."""


@dataclass(frozen=True)
class Deploy:
    stage: str
    version: str
    replaces: str | None
    reason: str
    rollback_of_deprecated: bool = False


@dataclass(frozen=True)
class Retire:
    stage: str
    version: str | None
    reason: str


@dataclass(frozen=True)
class Refuse:
    version: str
    stage: str
    reason: str


@dataclass(frozen=True)
class Repair:
    """The endpoint already serves what the registry wants, but the status tags disagree
    (for instance the control centre stopped between switching and writing tags)."""

    stage: str
    version: str
    stale: tuple[str, ...] = ()
    """Versions whose tags claim to serve this endpoint but do not."""


Action = Deploy | Retire | Refuse | Repair


@dataclass
class ProjectView:
    project: str
    versions: dict[str, ModelVersion]
    live: dict[str, str]
    stages: frozenset[str]
    in_progress: frozenset[str] = field(default_factory=frozenset)


def is_deprecated(version: ModelVersion) -> bool:
    return version.tags.get(names.TAG_DEPRECATED, "").strip().lower() in names.TRUE_VALUES


def _updated_at(version: ModelVersion) -> datetime:
    raw = version.tags.get(names.TAG_UPDATED_AT, "")
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        return datetime.fromtimestamp(0, UTC)


def deploying_elsewhere(version: ModelVersion, now: datetime) -> bool:
    """True while another worker (a Step Functions execution) is deploying this version."""
    return (version.tags.get(names.TAG_STATUS) == names.Status.DEPLOYING
            and now - _updated_at(version) < STALE_DEPLOYING)


def last_good(view: ProjectView, stage: str, exclude: str) -> ModelVersion | None:
    """The version that served ``<project>-<stage>`` most recently before ``exclude``."""
    endpoint = names.endpoint_name(view.project, stage)
    served = [
        v for v in view.versions.values()
        if v.version != exclude and not is_deprecated(v)
        and v.tags.get(names.TAG_ENDPOINT) == endpoint
        and v.tags.get(names.TAG_STATUS) in (names.Status.SUPERSEDED, names.Status.ROLLED_BACK)
    ]
    if not served:
        return None
    return max(served, key=lambda v: (_updated_at(v), v.number))


def plan(view: ProjectView) -> list[Action]:
    actions: list[Action] = []
    requested: dict[str, list[ModelVersion]] = {}
    for v in sorted(view.versions.values(), key=lambda v: v.number):
        stage = v.tags.get(names.TAG_DEPLOY)
        if stage is None:
            continue
        stage = stage.strip()
        if stage not in view.stages:
            actions.append(Refuse(v.version, stage, (
                f"unknown stage {stage!r}; known stages: {', '.join(sorted(view.stages))}")))
        elif is_deprecated(v) and view.live.get(stage) != v.version:
            actions.append(Refuse(v.version, stage,
                                  f"version {v.version} is deprecated and may not serve"))
        else:
            requested.setdefault(stage, []).append(v)

    for stage in sorted(set(requested) | set(view.live)):
        if stage in view.in_progress:
            continue
        current = view.live.get(stage)
        current_v = view.versions.get(current) if current else None
        wanted = [v for v in requested.get(stage, []) if not is_deprecated(v)]
        if current_v is not None and current in {v.version for v in wanted}:
            # A switch interrupted before its bookkeeping: the endpoint serves `current` as
            # tagged, and the version it replaced still says in_service here with its deploy
            # tag. Those tags are left over, not a request to roll back (a person's rollback
            # tags a version that is superseded or rolled back, never one in service).
            endpoint = names.endpoint_name(view.project, stage)
            wanted = [v for v in wanted if v.version == current or not (
                v.tags.get(names.TAG_STATUS) == names.Status.IN_SERVICE
                and v.tags.get(names.TAG_ENDPOINT) == endpoint)]
        new = [v for v in wanted if v.version != current]
        if new:
            chosen = max(new, key=lambda v: v.number)
            for loser in new:
                if loser is not chosen:
                    actions.append(Refuse(loser.version, stage, (
                        f"version {chosen.version} was requested for {stage} at the same "
                        "time and won")))
            verb = "roll back" if current and chosen.number < int(current) else "deploy"
            actions.append(Deploy(stage, chosen.version, current,
                                  f"{verb} to version {chosen.version} (tagged deploy={stage})"))
        elif current_v is not None and is_deprecated(current_v):
            target = last_good(view, stage, exclude=current_v.version)
            if target is not None:
                actions.append(Deploy(
                    stage, target.version, current,
                    f"version {current} is deprecated; rolling back to version "
                    f"{target.version}, the last good one", rollback_of_deprecated=True))
            else:
                actions.append(Retire(stage, current, (
                    f"version {current} is deprecated and no earlier good version served "
                    f"{stage}; endpoint removed")))
        elif current is not None and not wanted:
            actions.append(Retire(stage, current,
                                  f"no version is tagged deploy={stage}; endpoint removed"))
        elif current is not None:
            endpoint = names.endpoint_name(view.project, stage)
            stale = tuple(
                v.version for v in view.versions.values()
                if v.version != current and v.tags.get(names.TAG_ENDPOINT) == endpoint
                and v.tags.get(names.TAG_STATUS) in (names.Status.IN_SERVICE,
                                                    names.Status.DEPLOYING)
            )
            tags = current_v.tags if current_v else {}
            if stale or tags.get(names.TAG_STATUS) != names.Status.IN_SERVICE \
                    or tags.get(names.TAG_ENDPOINT) != endpoint:
                actions.append(Repair(stage, current, stale))
    return actions
