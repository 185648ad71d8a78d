"""The scheduled reconciler: every registered model, every few minutes, converged to what the
registry says. It makes a lost or failed webhook delivery change nothing in the end."""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.common import adapters
from lambdas.common.control import act_on_project
from lambdas.common.env import ControlEnv, get_environment, init_environment_variables
from lambdas.common.observability import logger, metrics, tracer
from mlops_control import names
from mlops_control.errors import ControlCentreError

TICK_S = 300
"""Executions started by the same five-minute tick share a name: a retried invocation of the
schedule starts nothing twice."""


def reconcile_all(env: ControlEnv, now: float) -> dict[str, Any]:
    registry = adapters.registry_client(env)
    backend = adapters.live_backend()
    starter = adapters.starter(env.deploy_state_machine_arn, env.retire_state_machine_arn)
    cause = f"reconcile-{int(now // TICK_S)}"
    report: dict[str, Any] = {}
    for project in registry.registered_model_names():
        if not names.PROJECT_NAME_PATTERN.match(project):
            continue  # not a model the control centre could serve
        try:
            acted = act_on_project(registry, backend, starter, project, env.stage_set, cause)
        except ControlCentreError as exc:
            # One broken project must not stop the others from converging.
            logger.error("reconcile failed", extra={"project": project, "reason": str(exc)})
            report[project] = {"error": str(exc)}
            continue
        report[project] = [a.as_dict() for a in acted]
        for item in acted:
            metrics.add_metric(name=f"Reconcile{item.result.capitalize()}",
                               unit=MetricUnit.Count, value=1)
    return report


@init_environment_variables(model=ControlEnv)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    report = reconcile_all(get_environment(ControlEnv), time.time())
    logger.info("reconciled", extra={"report": report})
    return report
