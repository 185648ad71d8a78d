"""The logic shared by the webhook receiver and the scheduled reconciler: plan what a project
needs, start a state machine execution for each deploy or retire, write refusals and repairs
straight into the registry."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from lambdas.common.adapters import ExecutionStarter
from mlops_control.registry import RegistryClient
from mlops_control.steps import apply, plan, reconcile
from mlops_control.steps.backend import Backend


@dataclass(frozen=True)
class Acted:
    action: str
    stage: str
    version: str | None
    result: str  # started, duplicate, busy, refused, repaired

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "stage": self.stage, "version": self.version,
                "result": self.result}


def act_on_project(registry: RegistryClient, backend: Backend, starter: ExecutionStarter,
                   project: str, stages: frozenset[str], cause: str) -> list[Acted]:
    """Converge one project. ``cause`` (a delivery id, a schedule tick) names the executions,
    so the same cause never starts the same work twice."""
    view = reconcile.view(registry, backend, project, stages)
    # A running execution makes its stage busy even before it writes `deploying`.
    view.in_progress = view.in_progress | starter.busy_stages(project, stages)
    acted: list[Acted] = []
    for action in plan.plan(view):
        if isinstance(action, plan.Deploy | plan.Retire):
            kind = "deploy" if isinstance(action, plan.Deploy) else "retire"
            result = starter.start(project, action, cause)
            acted.append(Acted(kind, action.stage, action.version, result))
        elif isinstance(action, plan.Refuse):
            apply.refuse(registry, project, action)
            acted.append(Acted("refuse", action.stage, action.version, "refused"))
        else:
            apply.repair(registry, project, action)
            acted.append(Acted("repair", action.stage, action.version, "repaired"))
    return acted
