"""The webhook receiver: what MLflow's deliveries start, and what is turned away."""

from __future__ import annotations

import json
import time

from lambdas import webhook
from mlops_control import events
from tests import events as recorded
from tests.lambdas.conftest import SECRET

DELIVERY = "7f8a2c1e-0000-4000-8000-000000000001"


def delivery(data: dict, *, secret: str = SECRET, delivery_id: str = DELIVERY,
             ts: int | None = None, entity: str = "model_version_tag", action: str = "set"):
    body = json.dumps({"entity": entity, "action": action,
                       "timestamp": "2026-11-26T12:00:00+00:00", "data": data})
    stamp = str(int(time.time()) if ts is None else ts)
    event = recorded.load("function_url_webhook")
    event["headers"].update({
        "x-mlflow-delivery-id": delivery_id, "x-mlflow-timestamp": stamp,
        "x-mlflow-signature": events.sign_webhook(secret, delivery_id, stamp, body.encode())})
    event["body"] = body
    return event


DEPLOY_V1 = {"name": "test-project", "version": "1", "key": "deploy", "value": "production"}


def test_given_a_signed_deploy_tag_when_delivered_then_one_deploy_execution_starts(aws, context):
    aws.registry.add("test-project", "1", deploy="production")
    response = webhook.handler(delivery(DEPLOY_V1), context)
    assert response["statusCode"] == 200
    assert json.loads(response["body"])["actions"] == [
        {"action": "deploy", "stage": "production", "version": "1", "result": "started"}]
    [execution] = aws.executions(aws.deploy_arn)
    assert execution["input"]["project"] == "test-project"
    assert execution["input"]["version"] == "1" and execution["input"]["replaces"] is None
    assert execution["name"].startswith("test-project-production-1-")


def test_given_the_same_delivery_twice_while_the_first_runs_then_nothing_new_starts(
        aws, context):
    aws.registry.add("test-project", "1", deploy="production")
    webhook.handler(delivery(DEPLOY_V1), context)
    second = webhook.handler(delivery(DEPLOY_V1), context)
    # moto leaves the execution RUNNING: the stage is busy, so nothing is planned for it.
    assert json.loads(second["body"])["actions"] == []
    assert len(aws.executions(aws.deploy_arn)) == 1


def test_given_the_same_delivery_after_the_first_finished_then_the_name_makes_it_a_duplicate(
        aws, context):
    aws.registry.add("test-project", "1", deploy="production")
    webhook.handler(delivery(DEPLOY_V1), context)
    [first] = aws.executions(aws.deploy_arn)
    aws.sfn.stop_execution(executionArn=first["executionArn"])
    second = webhook.handler(delivery(DEPLOY_V1), context)
    assert json.loads(second["body"])["actions"][0]["result"] == "duplicate"
    assert len(aws.executions(aws.deploy_arn)) == 1


def test_a_forged_delivery_is_refused_with_401_and_starts_nothing(aws, context):
    aws.registry.add("test-project", "1", deploy="production")
    response = webhook.handler(delivery(DEPLOY_V1, secret="not-the-secret"), context)
    assert response["statusCode"] == 401
    assert "signature" in json.loads(response["body"])["error"]
    assert aws.executions(aws.deploy_arn) == []


def test_a_stale_delivery_is_refused_with_401(aws, context):
    aws.registry.add("test-project", "1", deploy="production")
    response = webhook.handler(delivery(DEPLOY_V1, ts=int(time.time()) - 3600), context)
    assert response["statusCode"] == 401 and aws.executions(aws.deploy_arn) == []


def test_an_oversized_body_is_refused_with_413(aws, context):
    event = delivery(DEPLOY_V1)
    event["body"] = "x" * (events.MAX_WEBHOOK_BYTES + 1)
    assert webhook.handler(event, context)["statusCode"] == 413


def test_a_request_that_is_not_a_function_url_event_is_refused_with_400(aws, context):
    assert webhook.handler({"hello": "world"}, context)["statusCode"] == 400


def test_our_own_status_tags_start_nothing(aws, context):
    aws.registry.add("test-project", "1", deploy="production")
    data = {**DEPLOY_V1, "key": "deployment.status", "value": "in_service"}
    response = webhook.handler(delivery(data), context)
    assert response["statusCode"] == 200 and "ignored" in json.loads(response["body"])
    assert aws.executions(aws.deploy_arn) == []


def test_a_deploy_tag_on_a_deprecated_version_is_refused_in_the_tags(aws, context):
    aws.registry.add("test-project", "1", deploy="production", deprecated="true")
    response = webhook.handler(delivery(DEPLOY_V1), context)
    assert json.loads(response["body"])["actions"][0]["result"] == "refused"
    tags = aws.registry.tags("test-project", "1")
    assert tags["deployment.status"] == "failed" and "deprecated" in tags["deployment.message"]
    assert "deploy" not in tags and aws.executions(aws.deploy_arn) == []


class LiveAt:
    """What SageMaker serves, as ``live()`` reports it (the state machines do the rest)."""

    def __init__(self, live: dict[str, str]) -> None:
        self._live = live

    def live(self, project: str) -> dict[str, str]:
        return dict(self._live)


def test_given_the_staging_alias_set_in_mlflow_then_a_staging_deploy_starts(aws, context):
    aws.registry.add("test-project", "1")
    aws.registry.set_alias("test-project", "staging", "1")
    data = {"name": "test-project", "alias": "staging", "version": "1"}
    response = webhook.handler(delivery(data, entity="model_version_alias", action="created"),
                               context)
    assert json.loads(response["body"])["actions"] == [
        {"action": "deploy", "stage": "staging", "version": "1", "result": "started"}]
    [execution] = aws.executions(aws.deploy_arn)
    assert execution["input"]["reason"] == "deploy to version 1 (aliased @staging)"


def test_given_the_champion_alias_then_production_deploys(aws, context):
    aws.registry.add("test-project", "2")
    aws.registry.set_alias("test-project", "champion", "2")
    data = {"name": "test-project", "alias": "champion", "version": "2"}
    response = webhook.handler(delivery(data, entity="model_version_alias", action="created"),
                               context)
    assert json.loads(response["body"])["actions"] == [
        {"action": "deploy", "stage": "production", "version": "2", "result": "started"}]


def test_given_the_staging_alias_deleted_then_the_staging_endpoint_is_retired(
        aws, context, monkeypatch):
    from lambdas.common import adapters

    aws.registry.add("test-project", "1", **{"deployment.status": "in_service",
                                             "deployment.endpoint": "test-project-staging"})
    monkeypatch.setattr(adapters, "live_backend", lambda: LiveAt({"staging": "1"}))
    data = {"name": "test-project", "alias": "staging"}  # MLflow sends no version here
    response = webhook.handler(delivery(data, entity="model_version_alias", action="deleted"),
                               context)
    assert json.loads(response["body"])["actions"] == [
        {"action": "retire", "stage": "staging", "version": "1", "result": "started"}]
    [execution] = aws.executions(aws.retire_arn)
    assert "holds an alias for staging" in execution["input"]["reason"]


def test_given_a_deploy_tag_against_the_stage_alias_then_the_tag_is_refused(aws, context):
    aws.registry.add("test-project", "1", deploy="production")
    aws.registry.add("test-project", "2")
    aws.registry.set_alias("test-project", "production", "2")
    response = webhook.handler(delivery(DEPLOY_V1), context)
    actions = json.loads(response["body"])["actions"]
    assert {"action": "refuse", "stage": "production", "version": "1",
            "result": "refused"} in actions
    tags = aws.registry.tags("test-project", "1")
    assert "production follows the alias @production" in tags["deployment.message"]
    assert "deploy" not in tags
