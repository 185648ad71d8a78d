"""From the registry's tags and aliases and the endpoints that exist, what must change. Pure
functions.

The rules (documented in the README's control vocabulary):
- the version tagged ``deploy=<stage>``, or holding an alias that names the stage (``@staging``,
  or a mapped one such as ``@champion`` for production), should serve ``<project>-<stage>``;
- an alias wins over a deploy tag: a ``deploy=<stage>`` on another version than the one the
  stage's alias names is refused, saying which alias steers the stage;
- when several versions are newly requested for one stage, the one not yet serving wins (that
  is the new request), the highest number among them: MLflow keeps no time for a tag, so the
  newest version is the newest request we can know of. The others are ``superseded`` without
  being tried, and told which version won;
- ``deploy`` on a deprecated version, or on an unknown stage, is refused;
- if the live version is deprecated, roll back to the version that served that endpoint most
  recently before it (its per-stage record, which no refusal or other stage overwrites), or
  remove the endpoint when there is none;
- a stage no version is tagged or aliased for has no endpoint.
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
    status: str = names.Status.FAILED
    """``superseded`` when another version won the stage and this one was never tried."""
    alias: str | None = None
    """Set when the request was the alias ``@alias`` (it is removed, as a tag would be)."""
    known_stage: bool = True

    @property
    def request(self) -> str:
        return f"@{self.alias}" if self.alias else f"{names.TAG_DEPLOY}={self.stage}"


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
    return _parse_time(version.tags.get(names.TAG_UPDATED_AT))


def deploying_elsewhere(version: ModelVersion, now: datetime) -> bool:
    """True while another worker (a Step Functions execution) is deploying this version."""
    return (version.tags.get(names.TAG_STATUS) == names.Status.DEPLOYING
            and now - _updated_at(version) < STALE_DEPLOYING)


def alias_requests(version: ModelVersion, stages: frozenset[str]) -> list[tuple[str, str]]:
    """``(stage, alias)`` for each alias of ``version`` that names a configured stage."""
    found = []
    for alias in version.aliases:
        stage = alias if alias in stages else names.STAGE_ALIASES.get(alias)
        if stage in stages:
            found.append((stage, alias))
    return found


def requested_stages(version: ModelVersion, stages: frozenset[str]) -> set[str]:
    """The stages ``version`` is asked for, by its deploy tag or its aliases."""
    wanted = {stage for stage, _ in alias_requests(version, stages)}
    tag = version.tags.get(names.TAG_DEPLOY)
    if tag and tag.strip():
        wanted.add(tag.strip())
    return wanted


def _parse_time(raw: str | None) -> datetime:
    try:
        return datetime.fromisoformat(raw or "")
    except ValueError:
        return datetime.fromtimestamp(0, UTC)


def stage_record(view: ProjectView, version: ModelVersion, stage: str) -> tuple[str | None,
                                                                                datetime]:
    """What last happened to ``version`` on ``stage``'s endpoint, and when.

    The per-stage record first: no refusal and no deployment elsewhere writes it. A version
    that served before per-stage records existed has only the general tags; they count when
    they are about this endpoint."""
    status = version.tags.get(names.stage_status_tag(stage))
    if status is not None:
        return status, _parse_time(version.tags.get(names.stage_updated_at_tag(stage)))
    if version.tags.get(names.TAG_ENDPOINT) == names.endpoint_name(view.project, stage):
        return version.tags.get(names.TAG_STATUS), _updated_at(version)
    return None, datetime.fromtimestamp(0, UTC)


def last_good(view: ProjectView, stage: str, exclude: str) -> ModelVersion | None:
    """The version that served ``<project>-<stage>`` most recently before ``exclude``."""
    served = []
    for v in view.versions.values():
        if v.version == exclude or is_deprecated(v):
            continue
        status, at = stage_record(view, v, stage)
        if status in (names.Status.SUPERSEDED, names.Status.ROLLED_BACK):
            served.append((at, v.number, v))
    if not served:
        return None
    return max(served, key=lambda item: (item[0], item[1]))[2]


def _requests(view: ProjectView, actions: list[Action]
              ) -> tuple[dict[str, list[ModelVersion]], dict[tuple[str, str], str]]:
    """Which versions each stage is asked for, and how (``tagged deploy=s`` / ``aliased @a``);
    the requests that cannot stand are appended to ``actions`` as refusals."""
    requested: dict[str, list[ModelVersion]] = {}
    how: dict[tuple[str, str], str] = {}
    aliased: dict[str, dict[str, str]] = {}  # stage -> version -> alias
    ordered = sorted(view.versions.values(), key=lambda v: v.number)
    for v in ordered:
        for stage, alias in alias_requests(v, view.stages):
            if is_deprecated(v) and view.live.get(stage) != v.version:
                actions.append(Refuse(v.version, stage,
                                      f"version {v.version} is deprecated and may not serve",
                                      alias=alias))
                continue
            aliased.setdefault(stage, {})[v.version] = alias
            if (v.version, stage) not in how:
                requested.setdefault(stage, []).append(v)
                how[(v.version, stage)] = f"aliased @{alias}"
    for v in ordered:
        tag = v.tags.get(names.TAG_DEPLOY)
        if tag is None:
            continue
        stage = tag.strip()
        holders = aliased.get(stage, {})
        if stage not in view.stages:
            actions.append(Refuse(v.version, stage, (
                f"unknown stage {stage!r}; known stages: {', '.join(sorted(view.stages))}"),
                known_stage=False))
        elif is_deprecated(v) and view.live.get(stage) != v.version:
            actions.append(Refuse(v.version, stage,
                                  f"version {v.version} is deprecated and may not serve"))
        elif holders and v.version not in holders:
            holder, alias = next(iter(holders.items()))
            actions.append(Refuse(v.version, stage, (
                f"{stage} follows the alias @{alias}, which names version {holder}; move "
                f"@{alias} to version {v.version} instead, or delete the alias to steer "
                f"{stage} with deploy tags")))
        elif (v.version, stage) not in how:
            requested.setdefault(stage, []).append(v)
            how[(v.version, stage)] = f"tagged deploy={stage}"
    return requested, how


def plan(view: ProjectView) -> list[Action]:
    actions: list[Action] = []
    requested, how = _requests(view, actions)
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
                    via = how[(loser.version, stage)]
                    alias = via.removeprefix("aliased @") if via.startswith("aliased") else None
                    again = (f"set the alias @{alias} on it again" if alias else
                             f"tag it {names.TAG_DEPLOY}={stage} again")
                    actions.append(Refuse(loser.version, stage, (
                        f"version {chosen.version} was requested for {stage} too "
                        f"({how[(chosen.version, stage)]}) and won: the newest version wins "
                        f"(MLflow keeps no time for a tag). To serve version {loser.version} "
                        f"on {stage} instead, {again}: it then replaces version "
                        f"{chosen.version}"), status=names.Status.SUPERSEDED, alias=alias))
            verb = "roll back" if current and chosen.number < int(current) else "deploy"
            actions.append(Deploy(stage, chosen.version, current,
                                  f"{verb} to version {chosen.version} "
                                  f"({how[(chosen.version, stage)]})"))
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
            actions.append(Retire(stage, current, (
                f"no version is tagged deploy={stage} or holds an alias for {stage}; "
                "endpoint removed")))
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
