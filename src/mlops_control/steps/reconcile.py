"""The reconciler: compare what the registry wants with what runs, and converge.

Every event (webhook, new data, a timer tick, a start-up) ends here, so a lost, duplicated or
out-of-order event changes nothing in the end.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from mlops_control.errors import NotFound
from mlops_control.registry import RegistryClient
from mlops_control.steps import apply, plan
from mlops_control.steps.backend import Backend

logger = logging.getLogger("mlops_control.reconcile")


def view(registry: RegistryClient, backend: Backend, project: str, stages: frozenset[str],
         busy: frozenset[str] | None = None) -> plan.ProjectView:
    """``busy``: stages being deployed right now, when the caller knows (the local runtime
    does). When it does not (a Lambda), a fresh ``deploying`` tag means some execution is at
    work on that stage."""
    try:
        versions = {v.version: v for v in registry.model_versions(project)}
    except NotFound:
        versions = {}
    in_progress: set[str] = set(busy or ())
    if busy is None:
        now = datetime.now(UTC)
        for v in versions.values():
            if plan.deploying_elsewhere(v, now):
                in_progress.update(plan.requested_stages(v, stages))
    return plan.ProjectView(project=project, versions=versions, live=backend.live(project),
                            stages=stages, in_progress=frozenset(in_progress))


def reconcile_project(registry: RegistryClient, backend: Backend, project: str,
                      stages: frozenset[str],
                      busy: frozenset[str] | None = None) -> list[apply.Outcome]:
    """Plan and carry out every change ``project`` needs; return what was done."""
    actions = plan.plan(view(registry, backend, project, stages, busy))
    outcomes = []
    for action in actions:
        outcome = apply.execute(registry, backend, project, action)
        logger.debug("reconciled", extra={"project": project, "action": outcome.action,
                                          "stage": outcome.stage, "version": outcome.version,
                                          "ok": outcome.ok, "detail": outcome.message})
        outcomes.append(outcome)
    return outcomes
