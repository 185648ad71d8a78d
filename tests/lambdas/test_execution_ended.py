"""The execution-ended handler's logic against moto's DynamoDB and SNS: a failure it must
record while MLflow is down still sends the alert, and a retire that ended outside its own
states is released and notified."""

from __future__ import annotations

import json
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.common import lock
from lambdas.deploy_steps import EndedDetail, ended_logic
from mlops_control.errors import ControlCentreError

REGION = "eu-west-1"
EXECUTION = "arn:aws:states:eu-west-1:123456789012:execution:Deploy:delivery-1"


@pytest.fixture
def aws(monkeypatch) -> Any:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name=REGION)
        dynamodb.create_table(TableName="locks", BillingMode="PAY_PER_REQUEST",
                              KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                              AttributeDefinitions=[{"AttributeName": "pk",
                                                     "AttributeType": "S"}])
        sns = boto3.client("sns", region_name=REGION)
        topic = sns.create_topic(Name="failures")["TopicArn"]
        sqs = boto3.client("sqs", region_name=REGION)
        queue = sqs.create_queue(QueueName="inbox")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])[
            "Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)

        def inbox() -> list[dict[str, Any]]:
            messages = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get(
                "Messages", [])
            return [json.loads(m["Body"]) for m in messages]

        yield dynamodb, sns, topic, inbox


def request(**extra: Any) -> dict[str, Any]:
    return {"project": "churn", "stage": "production", "version": "3", "replaces": "2",
            "reason": "deploy", "rollback_of_deprecated": False, **extra}


def test_a_timed_out_deploy_is_alerted_even_when_mlflow_cannot_record_it(aws):
    dynamodb, sns, topic, inbox = aws
    assert lock.acquire(dynamodb, "locks", "churn-production", EXECUTION, "deploy",
                        request(), now=1000)

    def down() -> Any:
        raise ControlCentreError("MLflow refused GET /api/2.0/mlflow/model-versions/get")

    detail = EndedDetail(executionArn=EXECUTION, status="TIMED_OUT",
                         input=json.dumps(request()))
    answer = ended_logic(detail, dynamodb, "locks", down, sns, topic)

    assert answer == {"released": True, "notified": True, "recorded": False}
    [notice] = inbox()
    assert notice["Subject"] == "Deployment failed and could not be recorded in MLflow"
    assert "the execution ended TIMED_OUT" in notice["Message"]
    assert "MLflow refused" in notice["Message"]
    assert dynamodb.scan(TableName="locks")["Items"] == []


def test_a_retire_that_ended_outside_its_states_is_released_and_notified(aws):
    dynamodb, sns, topic, inbox = aws
    body = {"project": "churn", "stage": "production", "version": "2", "reason": "retire"}
    lock.acquire(dynamodb, "locks", "churn-production", EXECUTION, "retire", body, now=1000)

    detail = EndedDetail(executionArn=EXECUTION, status="FAILED", error="States.Runtime",
                         cause="An error occurred while executing the state",
                         input=json.dumps(body))
    answer = ended_logic(detail, dynamodb, "locks", lambda: None, sns, topic)  # type: ignore[arg-type,return-value]

    assert answer == {"released": True, "notified": True}
    [notice] = inbox()
    assert notice["Subject"] == "Retiring an endpoint failed"
    assert "States.Runtime" in notice["Message"]


def test_an_execution_that_held_no_lock_changes_nothing(aws):
    dynamodb, sns, topic, inbox = aws
    lock.acquire(dynamodb, "locks", "churn-production", "the-winner", "deploy", request(),
                 now=1000)

    detail = EndedDetail(executionArn=EXECUTION, status="FAILED", error="LockUnavailable",
                         input=json.dumps(request()))

    def registry() -> Any:
        raise AssertionError("a loser must not touch the registry")

    assert ended_logic(detail, dynamodb, "locks", registry, sns, topic) == {"released": False}
    assert inbox() == []
    [held] = dynamodb.scan(TableName="locks")["Items"]
    assert held["owner"]["S"] == "the-winner"
