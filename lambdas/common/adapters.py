"""Everything that talks to AWS or MLflow, made once per execution environment.

boto3 is imported here, lazily, so that a handler module imports fast (the Lambda runtime
provides boto3; importing it costs ~150 ms that a cold start pays only when a client is used).
"""

from __future__ import annotations

import functools
import json
import os
from datetime import UTC, datetime
from typing import Any

from lambdas.common.env import GlueEnv, RegistryEnv
from mlops_control import events
from mlops_control.backends.sagemaker import SageMakerBackend, SageMakerConfig
from mlops_control.registry import RegistryClient
from mlops_control.steps import plan

SECRET_MAX_AGE_S = 300
"""Secrets are re-read after five minutes, so a rotated webhook secret takes effect soon."""


@functools.cache
def trace_aws_calls() -> None:
    """Patch botocore for X-Ray before the first AWS client is made (see observability: the
    patch imports botocore, which a handler needs only once it calls AWS)."""
    from lambdas.common.observability import tracer

    tracer.patch(["botocore"])


@functools.cache
def client(service: str) -> Any:
    trace_aws_calls()
    import boto3

    return boto3.client(service)


def secret_string(arn: str) -> str:
    trace_aws_calls()  # Powertools makes its own Secrets Manager client
    from aws_lambda_powertools.utilities import parameters

    return str(parameters.get_secret(arn, max_age=SECRET_MAX_AGE_S))


def registry_client(env: RegistryEnv) -> RegistryClient:
    username = password = None
    if env.mlflow_auth_secret_arn:
        credentials = json.loads(secret_string(env.mlflow_auth_secret_arn))
        username, password = credentials["username"], credentials["password"]
    # Short timeout and few retries: a Lambda must answer MLflow's webhook quickly, and the
    # scheduled reconciler catches up whatever a slow MLflow made us miss.
    return RegistryClient(tracking_uri=env.tracking_uri, timeout=5.0, retries=1,
                          username=username, password=password)


def live_backend() -> SageMakerBackend:
    """A backend for ``live()`` only: the state machines do the deploying."""
    config = SageMakerConfig(image_uri="", role_arn="", capture_uri="",
                             region=os.environ.get("AWS_REGION", ""))
    return SageMakerBackend(sagemaker=client("sagemaker"), runtime=None, cloudwatch=None,
                            autoscaling=None, config=config)


def glue_backend(env: GlueEnv, registry: RegistryClient, token: str) -> SageMakerBackend:
    config = SageMakerConfig.from_env(os.environ, region=env.region)
    return SageMakerBackend(sagemaker=client("sagemaker"), runtime=None,
                            cloudwatch=client("cloudwatch"), autoscaling=None, config=config,
                            registry=registry, token=lambda: token)


class ExecutionStarter:
    """Starts deploy and retire executions named after the event that caused them."""

    def __init__(self, sfn: Any, deploy_arn: str, retire_arn: str) -> None:
        self.sfn = sfn
        self.deploy_arn = deploy_arn
        self.retire_arn = retire_arn

    def busy_stages(self, project: str, stages: frozenset[str]) -> frozenset[str]:
        """Stages of ``project`` with a running execution: a cheap way not to start a second
        one. It races (two callers can both see none running); the guarantee is the
        endpoint lock the state machines take first (``lambdas/common/lock.py``)."""
        busy: set[str] = set()
        for arn in (self.deploy_arn, self.retire_arn):
            pages = self.sfn.get_paginator("list_executions").paginate(
                stateMachineArn=arn, statusFilter="RUNNING")
            for page in pages:
                for execution in page.get("executions", []):
                    for stage in stages:
                        if execution["name"].startswith(_readable(project, stage)):
                            busy.add(stage)
        return frozenset(busy)

    def start(self, project: str, action: plan.Deploy | plan.Retire, cause: str) -> str:
        """Start one execution; a duplicate event maps to the same name and starts nothing.
        Returns ``started`` or ``duplicate``."""
        version = action.version or "none"
        name = events.execution_name(project, action.stage, version, cause)
        if isinstance(action, plan.Deploy):
            arn = self.deploy_arn
            body: dict[str, Any] = {
                "project": project, "stage": action.stage, "version": action.version,
                "replaces": action.replaces, "reason": action.reason,
                "rollback_of_deprecated": action.rollback_of_deprecated}
        else:
            arn = self.retire_arn
            body = {"project": project, "stage": action.stage, "version": action.version,
                    "reason": action.reason}
        return start_once(self.sfn, arn, name, body)


def start_once(sfn: Any, arn: str, name: str, body: dict[str, Any]) -> str:
    """``started``, or ``duplicate`` when an execution of that name exists.

    Step Functions answers a second start of a *running* execution with the same name and
    input with the original execution, as if it had started. The input therefore carries
    the moment of this request, so any earlier execution of the name differs in input and
    is refused with ExecutionAlreadyExists, running or finished. (Comparing the answer's
    startDate with our clock instead misjudged a fresh start as a duplicate whenever the
    service's clock or its millisecond rounding fell behind ours.)"""
    requested = {**body, "requested_at": datetime.now(UTC).isoformat()}
    try:
        sfn.start_execution(stateMachineArn=arn, name=name,
                            input=json.dumps(requested, sort_keys=True))
    except sfn.exceptions.ExecutionAlreadyExists:
        return "duplicate"
    return "started"


def _readable(project: str, stage: str) -> str:
    """The readable head :func:`events.execution_name` gives executions of this stage
    (``<project>-<stage>-<version>``, cut at 50 characters)."""
    return f"{project}-{stage}-"[:50]


def starter(deploy_arn: str, retire_arn: str) -> ExecutionStarter:
    return ExecutionStarter(client("stepfunctions"), deploy_arn, retire_arn)
