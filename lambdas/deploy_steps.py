"""Glue steps of the deploy and retire state machines. The SageMaker, CloudWatch and
Application Auto Scaling calls are the state machines' own ``aws-sdk`` tasks; these steps do
only what needs MLflow or a judgement:

- ``resolve``: check the version may serve and mark it ``deploying`` (``apply.begin``), find
  its artifacts and what serves now, delete candidate endpoints a stopped deployment left
  behind, and return every request of the deployment;
- ``acquire_lock``: take the endpoint's lock (``lambdas/common/lock.py``) before anything
  else; an execution that does not get it ends as busy, touching nothing;
- ``check_smoke``: read the project's test slice from MLflow, send it to the candidate
  endpoint (or a first deployment's new endpoint) and judge the answer; only a reference
  to the slice travels through the state, which stays small whatever the feature count;
- ``put_dashboards``: build the project's dashboards (the stats board shows the features of
  the test slice, read by reference) and put them;
- ``finish``: write the outcome into the registry (``apply.succeed`` / ``apply.fail``) and
  return the notification text;
- ``retire_finish``: delete the endpoint's candidates, configs and models, write ``retired``;
- ``execution_ended`` (EventBridge, every deploy/retire/train execution that ends): release a
  lock the machine's own states did not (stopped, timed out, or an error no Catch can see,
  such as ``States.DataLimitExceeded``) and then record the failure and notify; notify when a
  lock step failed (nothing was touched) or a training execution ended outside its own
  failure path (its SageMaker job may still run).

A step that raises fails its Task; the state machine catches it and runs ``finish``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from typing import Any, Literal

from aws_lambda_powertools.utilities.parser import BaseModel, event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ConfigDict, Field

from lambdas.common import adapters, lock
from lambdas.common.env import (
    EndedEnv,
    GlueEnv,
    LockEnv,
    get_environment,
    init_environment_variables,
)
from lambdas.common.observability import logger, metrics, tracer
from mlops_control import names
from mlops_control.backends import sagemaker as sm
from mlops_control.registry import RegistryClient
from mlops_control.steps import apply, plan
from mlops_control.steps.backend import DeploymentFailed, DeployTarget


class _Input(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)
    project: str = Field(pattern=names.PROJECT_NAME_PATTERN.pattern)
    stage: str = Field(pattern=names.STAGE_PATTERN.pattern)
    version: str | None = Field(default=None, pattern=r"^[0-9]{1,9}$")
    reason: str = ""


class DeployRequest(_Input):
    """The deploy state machine's execution input (what the webhook receiver starts it with)."""

    version: str = Field(pattern=r"^[0-9]{1,9}$")
    # A version number too: the finish step compares the two as integers.
    replaces: str | None = Field(default=None, pattern=r"^[0-9]{1,9}$")
    rollback_of_deprecated: bool = False


class RetireRequest(_Input):
    pass


class ResolveEvent(BaseModel):
    request: DeployRequest
    execution: str


class SmokeRef(BaseModel):
    """Where the test slice is (``resolve`` puts this, not the slice, in the state)."""

    EndpointName: str = Field(min_length=1)
    run_id: str = Field(min_length=1)


class SmokeEvent(BaseModel):
    smoke: SmokeRef


class DashboardsEvent(BaseModel):
    spec: dict[str, Any]
    """``resolve``'s ``spec`` (a :class:`sm.DeploymentSpec`)."""
    smoke: SmokeRef | None = None


class LockEvent(BaseModel):
    request: _Input
    kind: Literal["deploy", "retire"]
    execution: str = Field(min_length=1)
    """The execution's ARN: the lock's owner."""


class EndedDetail(BaseModel):
    """The part of EventBridge's "Step Functions Execution Status Change" event we read."""

    model_config = ConfigDict(extra="ignore")
    executionArn: str
    status: str
    input: str | None = None
    error: str | None = None
    cause: str | None = None


class EndedEvent(BaseModel):
    model_config = ConfigDict(extra="ignore")
    detail: EndedDetail


class TaskError(BaseModel):
    """What a Catch puts in ``ResultPath``: ``Error`` and ``Cause``."""

    Error: str
    Cause: str = ""


class FinishEvent(BaseModel):
    request: DeployRequest
    outcome: Literal["succeeded", "failed"]
    error: TaskError | None = None
    revert_error: TaskError | None = None
    """Set when putting the previous config back failed too: then it may not serve."""


class RetireEvent(BaseModel):
    request: RetireRequest


def _registry() -> RegistryClient:
    return adapters.registry_client(get_environment(GlueEnv))


def failure_reason(error: TaskError | None) -> str:
    """A person-readable reason from a caught error: a Lambda's ``errorMessage``, or the
    service's message for an ``aws-sdk`` task."""
    if error is None:
        return "unknown failure"
    try:
        cause = json.loads(error.Cause)
        message = cause.get("errorMessage") if isinstance(cause, dict) else None
    except ValueError:
        message = None
    return f"{error.Error}: {message or error.Cause or 'no cause given'}"[:1000]


def resolve_logic(event: ResolveEvent, registry: RegistryClient,
                  backend: sm.SageMakerBackend) -> dict[str, Any]:
    request = event.request
    target = apply.begin(registry, request.project, request.stage, request.version)
    spec = backend.spec_for(target)
    previous = backend.current_config(target.endpoint)
    stale = backend.delete_candidates(target.endpoint)
    if stale:
        logger.warning("deleted candidate endpoints left behind", extra={"endpoints": stale})
    return sm.deployment_requests(spec, backend.config, target.smoke_payload, previous,
                                  smoke_run_id=target.run_id)


def smoke_logic(ref: SmokeRef, registry: RegistryClient, runtime: Any) -> int:
    """Send the run's test slice to the endpoint; the number of predictions, one per row."""
    payload = apply.smoke_payload(registry, ref.run_id)
    if payload is None:
        raise DeploymentFailed(f"smoke test: the test slice of run {ref.run_id} "
                               f"({names.SMOKE_TEST_ARTIFACT}) could not be read from MLflow; "
                               "check the run's artifacts and that MLflow answers")
    try:
        answer = runtime.invoke_endpoint(**sm.smoke_request(ref.EndpointName, payload))
    except Exception as exc:  # botocore's ClientError and connection errors alike
        raise DeploymentFailed(f"smoke test: {ref.EndpointName} refused the test slice: "
                               f"{exc}") from exc
    return sm.check_smoke_response(answer["Body"].read(), sm.expected_rows(payload))


def dashboards_logic(event: DashboardsEvent, registry: RegistryClient,
                     cfg: sm.SageMakerConfig, cloudwatch: Any) -> list[str]:
    """Put the project's dashboards; the stats board's per-feature widgets come from the
    test slice's columns. The version already serves: an unreadable slice costs only those
    widgets, not the deployment."""
    payload = apply.smoke_payload(registry, event.smoke.run_id) if event.smoke else None
    spec = sm.DeploymentSpec(**event.spec)
    put = []
    for request in sm.dashboard_requests(spec, cfg, sm.features_of(payload)):
        cloudwatch.put_dashboard(**request)
        put.append(request["DashboardName"])
    return put


def acquire_logic(event: LockEvent, dynamodb: Any, table: str, now: float) -> dict[str, Any]:
    key = names.endpoint_name(event.request.project, event.request.stage)
    acquired = lock.acquire(dynamodb, table, key, event.execution, event.kind,
                            event.request.model_dump(), now)
    return {"acquired": acquired, "key": key, "owner": event.execution}


TRAINING_FAILED = "TrainingFailed"
"""The error of the Train machine's own failure path, which has notified already."""
LOCK_UNAVAILABLE = "LockUnavailable"
"""The error of the Fail state a deploy/retire ends in when its lock step itself failed."""


def ended_logic(detail: EndedDetail, dynamodb: Any, table: str,
                registry: Callable[[], RegistryClient], sns: Any,
                topic_arn: str) -> dict[str, Any]:
    """An execution ended. If it still holds its endpoint's lock, its own states never ran
    to an end (they release it on every path): release it, and for a failure write the
    ``failed`` tags and notify, as the machine's failure path would have. A training
    execution that ended outside its own failure path is notified."""
    training = _training_input(detail.input)
    if training is not None:
        return _training_ended(detail, training, sns, topic_arn)
    try:
        request = _Input.model_validate_json(detail.input or "{}")
    except ValueError:
        return {"released": False, "why": "the event carries no project/stage input"}
    key = names.endpoint_name(request.project, request.stage)
    held = lock.release(dynamodb, table, key, detail.executionArn)
    if held is None:
        if detail.status != "SUCCEEDED" and detail.error == LOCK_UNAVAILABLE:
            # The lock table failed (throttled, KMS access denied): the execution touched
            # nothing and the tags still ask for the work, so the reconciler will try again,
            # but a person must learn why nothing happens.
            sns.publish(TopicArn=topic_arn, Subject=f"Work on {key} could not start"[:99],
                        Message=f"an execution for {key} could not take the endpoint's lock "
                                f"and changed nothing: {(detail.cause or 'no cause given')[:800]}"
                                f" ({detail.executionArn}); the reconciler retries while the "
                                "tags still ask for it")
            return {"released": False, "notified": True}
        return {"released": False}
    if detail.status == "SUCCEEDED":
        logger.warning("released a lock the execution left", extra={"endpoint": key})
        return {"released": True}
    reason = (f"the execution ended {detail.status} before it could record its outcome: "
              f"{detail.error or 'no error given'}: {(detail.cause or '')[:500]}")
    if held.kind != "deploy":
        sns.publish(TopicArn=topic_arn, Subject="Retiring an endpoint failed",
                    Message=f"retiring {key}: {reason} ({detail.executionArn})")
        return {"released": True, "notified": True}
    deploy = DeployRequest.model_validate(held.request)
    try:
        # What serves now is unknown (the execution may have stopped mid-update): nobody
        # may claim the previous version still does.
        apply.fail(registry(), None, deploy.project, deploy.stage, deploy.version,
                   f"{reason} (check {key} in SageMaker)", None)
        subject = f"Deployment to {key} failed"[:99]
    except Exception as exc:  # MLflow down: the alert must still go out
        logger.exception("could not record the failure")
        subject = "Deployment failed and could not be recorded in MLflow"
        reason = f"{reason}; recording it in MLflow failed: {exc}"
    sns.publish(TopicArn=topic_arn, Subject=subject,
                Message=f"{deploy.project} version {deploy.version} was not deployed to "
                        f"{key}: {reason} ({detail.executionArn})")
    return {"released": True, "notified": True, "recorded": subject.startswith("Deployment to")}


def _training_input(raw: str | None) -> dict[str, Any] | None:
    """The Train machine's input (data_trigger.training_input), or None for another's."""
    try:
        body = json.loads(raw or "{}")
    except ValueError:
        return None
    return body if isinstance(body, dict) and "training_job_name" in body else None


def _training_ended(detail: EndedDetail, training: dict[str, Any], sns: Any,
                    topic_arn: str) -> dict[str, Any]:
    if detail.status == "SUCCEEDED" or (detail.status == "FAILED"
                                        and detail.error == TRAINING_FAILED):
        return {"notified": False}  # a success, or a failure the machine notified itself
    job = str(training["training_job_name"])
    project = str(training.get("project", "?"))
    sns.publish(TopicArn=topic_arn, Subject=f"Training {project} ended {detail.status}"[:99],
                Message=f"the training execution for {project} ended {detail.status} before "
                        f"it could report: {detail.error or 'no error given'}: "
                        f"{(detail.cause or '')[:500]} ({detail.executionArn}). The SageMaker "
                        f"training job {job} may still run; stop it with `aws sagemaker "
                        f"stop-training-job --training-job-name {job}` if it should not.")
    return {"notified": True, "training_job": job}


def finish_logic(event: FinishEvent, registry: RegistryClient) -> dict[str, Any]:
    request = event.request
    endpoint = names.endpoint_name(request.project, request.stage)
    if event.outcome == "succeeded":
        target = DeployTarget(project=request.project, stage=request.stage,
                              version=request.version, endpoint=endpoint, run_id=None,
                              smoke_payload=None)
        apply.succeed(registry, target, request.replaces, request.reason,
                      request.rollback_of_deprecated)
        return {"subject": f"{endpoint} serves version {request.version}",
                "message": f"{request.project} version {request.version} is in service at "
                           f"{endpoint}: {request.reason}"}
    reason = failure_reason(event.error)
    live = request.replaces
    if event.revert_error is not None:
        reason = (f"{reason}; putting the previous config back failed too: "
                  f"{failure_reason(event.revert_error)} (check {endpoint} in SageMaker)")
        live = None  # then nobody may claim the previous version serves
    apply.fail(registry, None, request.project, request.stage, request.version, reason, live)
    still = f" Version {live} keeps serving." if live else ""
    return {"subject": f"Deployment to {endpoint} failed"[:99],
            "message": f"{request.project} version {request.version} was not deployed to "
                       f"{endpoint}: {reason}.{still}"}


def retire_logic(event: RetireEvent, registry: RegistryClient,
                 backend: sm.SageMakerBackend) -> dict[str, Any]:
    request = event.request
    endpoint = names.endpoint_name(request.project, request.stage)
    candidates = backend.delete_candidates(endpoint)
    deleted = backend.delete_configs_and_models(endpoint)
    # The state machine already deleted the endpoint, alarms and dashboards; apply.retire
    # only writes the tags (its backend call is a no-op here).
    apply.retire(registry, _AlreadyRetired(), request.project,
                 plan.Retire(request.stage, request.version, request.reason or
                             f"{endpoint} retired"))
    return {"endpoint": endpoint, "deleted_candidates": candidates, "deleted_configs": deleted}


class _AlreadyRetired:
    def live(self, project: str) -> dict[str, str]:
        return {}

    def deploy(self, target: DeployTarget) -> None:
        raise NotImplementedError("the retire glue never deploys")

    def retire(self, project: str, stage: str) -> None:
        return None


@init_environment_variables(model=GlueEnv)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=ResolveEvent)
def resolve(event: ResolveEvent, context: LambdaContext) -> dict[str, Any]:
    env = get_environment(GlueEnv)
    registry = _registry()
    # Names derive from the execution: a retried step reuses them instead of leaking more.
    token = hashlib.sha256(event.execution.encode()).hexdigest()[:8]
    backend = adapters.glue_backend(env, registry, token=token)
    result = resolve_logic(event, registry, backend)
    logger.info("deployment resolved", extra={"spec": result["spec"],
                                              "endpoint_exists": result["endpoint_exists"]})
    return result


@init_environment_variables(model=GlueEnv)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=SmokeEvent)
def check_smoke(event: SmokeEvent, context: LambdaContext) -> dict[str, Any]:
    predictions = smoke_logic(event.smoke, _registry(), adapters.client("sagemaker-runtime"))
    logger.info("smoke test passed", extra={"endpoint": event.smoke.EndpointName,
                                            "predictions": predictions})
    return {"predictions": predictions}


@init_environment_variables(model=GlueEnv)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=DashboardsEvent)
def put_dashboards(event: DashboardsEvent, context: LambdaContext) -> dict[str, Any]:
    env = get_environment(GlueEnv)
    cfg = sm.SageMakerConfig.from_env(os.environ, region=env.region)
    put = dashboards_logic(event, _registry(), cfg, adapters.client("cloudwatch"))
    logger.info("dashboards put", extra={"dashboards": put})
    return {"dashboards": put}


@init_environment_variables(model=LockEnv)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=LockEvent)
def acquire_lock(event: LockEvent, context: LambdaContext) -> dict[str, Any]:
    result = acquire_logic(event, adapters.client("dynamodb"),
                           get_environment(LockEnv).lock_table, time.time())
    logger.info("endpoint lock", extra=result)
    return result


@init_environment_variables(model=EndedEnv)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=EndedEvent)
def execution_ended(event: EndedEvent, context: LambdaContext) -> dict[str, Any]:
    env = get_environment(EndedEnv)
    result = ended_logic(event.detail, adapters.client("dynamodb"), env.lock_table,
                         lambda: adapters.registry_client(env), adapters.client("sns"),
                         env.topic_arn)
    logger.info("execution ended", extra={"execution": event.detail.executionArn,
                                          "status": event.detail.status, **result})
    return result


@init_environment_variables(model=GlueEnv)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=FinishEvent)
def finish(event: FinishEvent, context: LambdaContext) -> dict[str, Any]:
    result = finish_logic(event, _registry())
    # Not **result: "message" is a LogRecord attribute, and logging refuses to overwrite it.
    logger.info("deployment finished", extra={"outcome": event.outcome,
                                              "subject": result["subject"],
                                              "notice": result["message"]})
    return result


@init_environment_variables(model=GlueEnv)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=RetireEvent)
def retire_plan(event: RetireEvent, context: LambdaContext) -> dict[str, Any]:
    project, stage = event.request.project, event.request.stage
    # SageMaker alone knows what still serves: no MLflow client (nor its secret) needed here.
    stages = json.loads(get_environment(GlueEnv).stage_settings)  # {stage: its settings}
    others = sm.other_stage_endpoints(adapters.client("sagemaker"), stages, project, stage)
    if others:
        logger.info("other stages still serve: the dashboards stay",
                    extra={"project": project, "serving": others})
    return sm.retire_requests(project, stage, others)


@init_environment_variables(model=GlueEnv)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=RetireEvent)
def retire_finish(event: RetireEvent, context: LambdaContext) -> dict[str, Any]:
    env = get_environment(GlueEnv)
    registry = _registry()
    result = retire_logic(event, registry, adapters.glue_backend(env, registry, token="retire"))
    logger.info("endpoint retired", extra=result)
    return result
