"""New training data: S3 ``Object Created`` (via EventBridge) under ``<data prefix>/<project>/``
starts the training state machine, in an execution named after the event, so a redelivered
event trains nothing twice."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.common import adapters
from lambdas.common.env import DataTriggerEnv, get_environment, init_environment_variables
from lambdas.common.observability import logger, metrics, tracer
from mlops_control import events, names
from mlops_control.errors import EventError


def training_input(data: events.DataEvent, data_prefix: str) -> dict[str, Any]:
    """The training state machine's input: the project's whole prefix is the data channel
    (all of its data, the new file included); the new object is the lineage's version."""
    bucket = data.location.removeprefix("s3://").split("/", 1)[0]
    prefix = f"{data_prefix.strip('/')}/{data.project}/".lstrip("/")
    return {"project": data.project, "data_location": f"s3://{bucket}/{prefix}",
            "data_object": data.location, "data_version": data.version,
            "trigger": str(names.Trigger.NEW_DATA), "event_id": data.event_id,
            "training_job_name": names.training_job_name(data.project, data.event_id)}


def start_training(raw: dict[str, Any], env: DataTriggerEnv, sfn: Any) -> dict[str, Any]:
    data = events.parse_s3_object_created(raw, env.data_prefix)
    if data.project not in env.project_set:
        raise EventError(f"{data.project!r} is not one of the configured projects")
    body = training_input(data, env.data_prefix)
    name = events.execution_name(data.project, "train", data.event_id)
    result = adapters.start_once(sfn, env.train_state_machine_arn, name, body)
    return {"project": data.project, "execution": name, "result": result,
            "training_job": body["training_job_name"]}


@init_environment_variables(model=DataTriggerEnv)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=S3EventNotificationEventBridgeModel)
def handler(event: S3EventNotificationEventBridgeModel, context: LambdaContext
            ) -> dict[str, Any]:
    env = get_environment(DataTriggerEnv)
    raw = event.model_dump(mode="json", by_alias=True)
    try:
        result = start_training(raw, env, adapters.client("stepfunctions"))
    except EventError as exc:
        # Not retried: the same object would be refused again. Logged with its reason.
        logger.warning("data event ignored", extra={"reason": exc.reason,
                                                    "key": event.detail.object.key})
        metrics.add_metric(name="DataEventIgnored", unit=MetricUnit.Count, value=1)
        return {"result": "ignored", "reason": exc.reason}
    metrics.add_metric(name=f"Training{result['result'].capitalize()}", unit=MetricUnit.Count,
                       value=1)
    logger.info("training requested", extra=result)
    return result
