"""Carrying out a plan with a backend, and writing the outcome into the registry.

Deployment is split into ``begin``/``succeed``/``fail`` so that the AWS state machine can call
the very same bookkeeping from its glue Lambdas around its SageMaker tasks; ``deploy`` strings
them together around ``Backend.deploy`` for the local runtime and the CLI.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from mlops_control import names
from mlops_control.errors import ControlCentreError, NotFound
from mlops_control.registry import ModelVersion, RegistryClient
from mlops_control.steps import plan as plan_mod
from mlops_control.steps import status
from mlops_control.steps.backend import Backend, DeploymentFailed, DeployTarget

logger = logging.getLogger("mlops_control.steps")



@dataclass(frozen=True)
class Outcome:
    action: str
    stage: str
    version: str | None
    ok: bool
    message: str


def smoke_payload(registry: RegistryClient, run_id: str | None) -> dict[str, Any] | None:
    """The test slice the training job stored with the run, or None for models trained
    elsewhere (then only the signature's input example is available to the backend)."""
    if not run_id:
        return None
    try:
        payload = json.loads(registry.run_artifact(run_id, names.SMOKE_TEST_ARTIFACT))
    except (NotFound, ValueError):
        return None
    except ControlCentreError as exc:
        logger.warning("no smoke test payload", extra={"run_id": run_id, "error": str(exc)})
        return None
    return payload if isinstance(payload, dict) else None


def begin(registry: RegistryClient, project: str, stage: str, version: str) -> DeployTarget:
    """Check the version may serve and mark it ``deploying``."""
    mv = registry.get_model_version(project, version)
    endpoint = names.endpoint_name(project, stage)
    if plan_mod.is_deprecated(mv):
        raise DeploymentFailed(f"version {version} is deprecated and may not serve")
    if mv.status != "READY":
        raise DeploymentFailed(f"version {version} is {mv.status}, not READY")
    status.record(registry, project, version, names.Status.DEPLOYING, endpoint,
                  f"deploying to {endpoint}", stage=stage)
    return DeployTarget(project=project, stage=stage, version=version, endpoint=endpoint,
                        run_id=mv.run_id, smoke_payload=smoke_payload(registry, mv.run_id))


def succeed(registry: RegistryClient, target: DeployTarget, replaced: str | None,
            reason: str, replaced_deprecated: bool = False) -> None:
    """The new version serves: say so, and say what became of the one it replaced."""
    project, stage = target.project, target.stage
    if replaced_deprecated and replaced:
        # The control centre moves the request itself, so the registry shows the truth: the
        # stage's alias when one steered it, else the deploy tag.
        aliases = _stage_aliases(registry, project, replaced, stage)
        for alias in aliases:
            registry.set_alias(project, alias, target.version)
        if not aliases:
            registry.set_tag(project, target.version, names.TAG_DEPLOY, stage)
    status.record(registry, project, target.version, names.Status.IN_SERVICE, target.endpoint,
                  f"serving at {target.endpoint}: {reason}", stage=stage)
    if replaced and replaced != target.version:
        if replaced_deprecated:
            outcome, text = names.Status.RETIRED, (
                f"deprecated; {target.endpoint} rolled back to version {target.version}")
        elif int(target.version) < int(replaced):
            outcome, text = names.Status.ROLLED_BACK, (
                f"{target.endpoint} rolled back to version {target.version}")
        else:
            outcome, text = names.Status.SUPERSEDED, (
                f"superseded by version {target.version} at {target.endpoint}")
        status.clear_deploy_tag(registry, project, replaced, stage)
        status.record(registry, project, replaced, outcome, target.endpoint, text, stage=stage)


def fail(registry: RegistryClient, target: DeployTarget | None, project: str, stage: str,
         version: str, reason: str, live: str | None) -> None:
    """The deployment failed: the live version keeps serving; the tags say why."""
    endpoint = names.endpoint_name(project, stage)
    still = (f"; version {live} keeps serving {endpoint}" if live and live != version
             else "")
    status.clear_deploy_tag(registry, project, version, stage)
    for alias in _stage_aliases(registry, project, version, stage):
        # As the deploy tag is removed, so the alias leaves the version that failed: back to
        # the version that keeps serving, so that the stage's alias names what serves.
        if live and live != version:
            registry.set_alias(project, alias, live)
        else:
            registry.delete_alias(project, alias)
    status.record(registry, project, version, names.Status.FAILED, endpoint,
                  f"deployment to {endpoint} failed: {reason}{still}", stage=stage)


def _stage_aliases(registry: RegistryClient, project: str, version: str, stage: str,
                   mv: ModelVersion | None = None) -> list[str]:
    """The aliases of ``version`` that steer ``stage``."""
    mv = mv or registry.get_model_version(project, version)
    return [alias for s, alias in plan_mod.alias_requests(mv, frozenset({stage})) if s == stage]


def deploy(registry: RegistryClient, backend: Backend, project: str,
           action: plan_mod.Deploy) -> Outcome:
    target = None
    try:
        target = begin(registry, project, action.stage, action.version)
        backend.deploy(target)
    except (DeploymentFailed, ControlCentreError) as exc:
        fail(registry, target, project, action.stage, action.version, str(exc), action.replaces)
        logger.warning("deployment failed", extra={"project": project, "stage": action.stage,
                                                   "version": action.version, "reason": str(exc)})
        return Outcome("deploy", action.stage, action.version, False, str(exc))
    succeed(registry, target, action.replaces, action.reason, action.rollback_of_deprecated)
    return Outcome("deploy", action.stage, action.version, True, action.reason)


def retire(registry: RegistryClient, backend: Backend, project: str,
           action: plan_mod.Retire) -> Outcome:
    backend.retire(project, action.stage)
    endpoint = names.endpoint_name(project, action.stage)
    if action.version is not None:
        mv = registry.get_model_version(project, action.version)
        for alias in _stage_aliases(registry, project, action.version, action.stage, mv):
            status.clear_alias(registry, project, action.version, alias)
        # The version may have moved to another stage meanwhile; then it is not retired
        # there, but its record of this stage ends here all the same.
        if mv.tags.get(names.TAG_ENDPOINT) in (None, endpoint):
            status.clear_deploy_tag(registry, project, action.version, action.stage)
            status.record(registry, project, action.version, names.Status.RETIRED, endpoint,
                          action.reason, stage=action.stage)
        else:
            status.record_stage(registry, project, action.version, action.stage,
                                names.Status.RETIRED, status.now_iso())
    return Outcome("retire", action.stage, action.version, True, action.reason)


def refuse(registry: RegistryClient, project: str, action: plan_mod.Refuse) -> Outcome:
    """Remove the request (tag or alias) and say why in the tags. A refusal never touches the
    version's record of another stage, nor of this one once it has one: it was not tried."""
    if action.alias:
        status.clear_alias(registry, project, action.version, action.alias)
    else:
        status.clear_deploy_tag(registry, project, action.version, action.stage)
    if action.known_stage:
        mv = registry.get_model_version(project, action.version)
        if names.stage_status_tag(action.stage) not in mv.tags:
            # Else the general tags (which this refusal overwrites) would be read as this
            # version's past on the stage.
            status.record_stage(registry, project, action.version, action.stage,
                                names.STAGE_REFUSED, status.now_iso())
    verb = "not deployed" if action.status == names.Status.SUPERSEDED else "refused"
    status.record(registry, project, action.version, action.status,
                  names.endpoint_name(project, action.stage)
                  if names.STAGE_PATTERN.match(action.stage) else None,
                  f"{action.request} {verb}: {action.reason}")
    return Outcome("refuse", action.stage, action.version, False, action.reason)


def repair(registry: RegistryClient, project: str, action: plan_mod.Repair) -> Outcome:
    endpoint = names.endpoint_name(project, action.stage)
    for stale in action.stale:
        # Left over by an interrupted switch, its deploy tag would ask for a rollback.
        status.clear_deploy_tag(registry, project, stale, action.stage)
        outcome = (names.Status.ROLLED_BACK if int(stale) > int(action.version)
                   else names.Status.SUPERSEDED)
        status.record(registry, project, stale, outcome, endpoint,
                      f"found not serving {endpoint} by the reconciler; version "
                      f"{action.version} serves it", stage=action.stage)
    status.record(registry, project, action.version, names.Status.IN_SERVICE, endpoint,
                  f"serving at {endpoint} (confirmed by the reconciler)", stage=action.stage)
    return Outcome("repair", action.stage, action.version, True, "tags repaired")


def execute(registry: RegistryClient, backend: Backend, project: str,
            action: plan_mod.Action) -> Outcome:
    if isinstance(action, plan_mod.Deploy):
        return deploy(registry, backend, project, action)
    if isinstance(action, plan_mod.Retire):
        return retire(registry, backend, project, action)
    if isinstance(action, plan_mod.Refuse):
        return refuse(registry, project, action)
    return repair(registry, project, action)
