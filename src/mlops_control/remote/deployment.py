"""``mlops remote deployment``: ask for a version on an endpoint, the way a person does.

It sets ``deploy=<stage>`` on the version in MLflow and (with ``wait``) follows the status
tags the control plane writes. It does not start the deploy state machine itself: the registry
is the source of truth, and a deployment the tags did not ask for would be undone by the next
reconcile (every five minutes) as "no version is tagged for this stage".
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from mlops_control import names
from mlops_control.errors import ControlCentreError
from mlops_control.registry import RegistryClient

FINAL = (names.Status.IN_SERVICE, names.Status.FAILED)
CLOCK_SKEW = timedelta(seconds=30)
"""A status written up to this long before we asked still counts as the answer: the Lambda's
clock and this machine's need not agree to the second."""


@dataclass(frozen=True)
class Outcome:
    status: str
    message: str
    endpoint: str


def request(registry: RegistryClient, project: str, version: str, stage: str
            ) -> datetime | None:
    """Tag ``version`` ``deploy=<stage>``; returns the moment asked (to recognise the answer),
    or None when the version already serves that stage (nothing to ask)."""
    if not names.STAGE_PATTERN.match(stage):
        raise ControlCentreError(f"{stage!r} is not a stage name (lower-case letters, digits)")
    tags = registry.get_model_version(project, version).tags  # NotFound names what is missing
    if (tags.get(names.TAG_DEPLOY) == stage and tags.get(names.TAG_STATUS) ==
            names.Status.IN_SERVICE and tags.get(names.TAG_ENDPOINT) ==
            names.endpoint_name(project, stage)):
        return None
    asked = datetime.fromisoformat(_now_iso())
    registry.set_tag(project, version, names.TAG_DEPLOY, stage)
    return asked


def wait(registry: RegistryClient, project: str, version: str, stage: str,
         asked: datetime, timeout_s: float = 3600.0, poll_s: float = 15.0,
         sleep: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic,
         progress: Callable[[str], None] = lambda _: None) -> Outcome:
    """Until the control plane writes ``in_service`` or ``failed`` for this request (a status
    older than ``asked`` is a previous deployment's and does not count)."""
    endpoint = names.endpoint_name(project, stage)
    deadline = clock() + timeout_s
    last = ""
    while True:
        tags = registry.get_model_version(project, version).tags
        status = tags.get(names.TAG_STATUS, "")
        fresh = _updated(tags) >= asked - CLOCK_SKEW
        if fresh and status != last:
            progress(f"{project} version {version}: {status} ({tags.get(names.TAG_MESSAGE, '')})")
            last = status
        if fresh and status in FINAL and tags.get(names.TAG_ENDPOINT) in (endpoint, None):
            return Outcome(status, tags.get(names.TAG_MESSAGE, ""), endpoint)
        if clock() > deadline:
            raise ControlCentreError(
                f"no outcome for {project} version {version} on {endpoint} after "
                f"{timeout_s:.0f}s (last status: {status or 'none'}); the deploy state "
                "machine may still be running")
        sleep(poll_s)


def _updated(tags: dict[str, str]) -> datetime:
    try:
        return datetime.fromisoformat(tags.get(names.TAG_UPDATED_AT, ""))
    except ValueError:
        return datetime.fromisoformat("1970-01-01T00:00:00+00:00")


def _now_iso() -> str:
    from mlops_control.steps.status import now_iso

    return now_iso()


def live_version(registry: RegistryClient, project: str, stage: str) -> str | None:
    """The version whose tags say it serves ``<project>-<stage>``."""
    endpoint = names.endpoint_name(project, stage)
    for version in registry.model_versions(project):
        if (version.tags.get(names.TAG_STATUS) == names.Status.IN_SERVICE
                and version.tags.get(names.TAG_ENDPOINT) == endpoint):
            return version.version
    return None


def rollback(registry: RegistryClient, project: str, stage: str, timeout_s: float = 3600.0,
             poll_s: float = 15.0, sleep: Callable[[float], None] = time.sleep,
             clock: Callable[[], float] = time.monotonic,
             progress: Callable[[str], None] = lambda _: None) -> Outcome:
    """Roll back the way a person does: tag the live version ``deprecated=true``. The control
    plane then serves the last good version again, or removes the endpoint when there is none;
    returns the version's final state (``retired``) with what now serves in the message."""
    live = live_version(registry, project, stage)
    if live is None:
        raise ControlCentreError(f"no version of {project} serves {stage}: nothing to roll back")
    asked = datetime.fromisoformat(_now_iso())
    registry.set_tag(project, live, names.TAG_DEPRECATED, "true")
    progress(f"{project} version {live}: deprecated=true set; the control plane rolls back")
    deadline = clock() + timeout_s
    endpoint = names.endpoint_name(project, stage)
    while True:
        tags = registry.get_model_version(project, live).tags
        if (tags.get(names.TAG_STATUS) == names.Status.RETIRED
                and _updated(tags) >= asked - CLOCK_SKEW):
            now = live_version(registry, project, stage)
            serving = f"version {now} serves {endpoint}" if now else f"{endpoint} removed"
            return Outcome(names.Status.RETIRED, f"{tags.get(names.TAG_MESSAGE, '')}; "
                                                 f"{serving}", endpoint)
        if clock() > deadline:
            raise ControlCentreError(f"version {live} still {tags.get(names.TAG_STATUS)} "
                                     f"after {timeout_s:.0f}s")
        sleep(poll_s)
