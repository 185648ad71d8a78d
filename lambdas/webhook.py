"""MLflow registry webhooks behind a Lambda Function URL (auth NONE, so every delivery is
HMAC-verified here before anything else happens).

401 forged or stale, 400 malformed, 413 oversized, 503 when MLflow cannot be reached (MLflow
retries; the scheduled reconciler catches up anyway), 200 with what was done otherwise.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.parser.models import LambdaFunctionUrlModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from lambdas.common import adapters
from lambdas.common.control import act_on_project
from lambdas.common.env import WebhookEnv, get_environment, init_environment_variables
from lambdas.common.observability import logger, metrics, tracer
from mlops_control import events, names
from mlops_control.errors import EventError, RegistryError


def respond(status: int, body: dict[str, Any]) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"},
            "body": json.dumps(body)}


def raw_body(request: LambdaFunctionUrlModel) -> bytes:
    text = request.body if isinstance(request.body, str) else ""
    if request.isBase64Encoded:
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise EventError("body is not valid base64") from None
    return text.encode()


def handle(request: LambdaFunctionUrlModel, env: WebhookEnv) -> dict[str, Any]:
    """Verify, parse, and act on one delivery. Every rejection is an EventError."""
    body = raw_body(request)
    # Checked before the secret is fetched: an oversized body costs us nothing.
    if len(body) > events.MAX_WEBHOOK_BYTES:
        raise EventError(f"body of {len(body)} bytes exceeds {events.MAX_WEBHOOK_BYTES}", 413)
    secret = adapters.secret_string(env.webhook_secret_arn)
    delivery_id = events.verify_webhook(request.headers, body, secret)
    event = events.parse_webhook(delivery_id, body)
    logger.append_keys(delivery_id=delivery_id, model=event.model, version=event.version)
    if not event.is_actionable:
        return {"delivery_id": delivery_id, "ignored": f"{event.event} {event.key or ''}".strip()}
    if not names.PROJECT_NAME_PATTERN.match(event.model):
        return {"delivery_id": delivery_id,
                "ignored": f"{event.model!r} cannot be a control centre project name"}
    registry = adapters.registry_client(env)
    starter = adapters.starter(env.deploy_state_machine_arn, env.retire_state_machine_arn)
    acted = act_on_project(registry, adapters.live_backend(), starter, event.model,
                           env.stage_set, cause=delivery_id)
    for item in acted:
        metrics.add_metric(name=f"Webhook{item.result.capitalize()}", unit=MetricUnit.Count,
                           value=1)
    return {"delivery_id": delivery_id, "actions": [a.as_dict() for a in acted]}


@init_environment_variables(model=WebhookEnv)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    env = get_environment(WebhookEnv)
    try:
        request = parse(event=event, model=LambdaFunctionUrlModel)
        result = handle(request, env)
    except ValidationError:
        logger.warning("webhook rejected", extra={"status": 400,
                                                  "reason": "not a Function URL request"})
        return respond(400, {"error": "not a Function URL request"})
    except EventError as exc:
        logger.warning("webhook rejected", extra={"status": exc.status, "reason": exc.reason})
        metrics.add_metric(name="WebhookRejected", unit=MetricUnit.Count, value=1)
        return respond(exc.status, {"error": exc.reason})
    except RegistryError as exc:
        logger.error("mlflow unavailable", extra={"status": 503, "reason": str(exc)})
        return respond(503, {"error": "MLflow is unavailable; the reconciler will catch up"})
    logger.info("webhook handled", extra={"result": result})
    return respond(200, result)
