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


def test_an_execution_that_found_its_endpoint_busy_changes_nothing(aws):
    dynamodb, sns, topic, inbox = aws
    lock.acquire(dynamodb, "locks", "churn-production", "the-winner", "deploy", request(),
                 now=1000)
    # The loser of the race ends in its EndpointBusy state: a success that touched nothing.
    detail = EndedDetail(executionArn=EXECUTION, status="SUCCEEDED", input=json.dumps(request()))

    def registry() -> Any:
        raise AssertionError("a loser must not touch the registry")

    assert ended_logic(detail, dynamodb, "locks", registry, sns, topic) == {"released": False}
    assert inbox() == []
    [held] = dynamodb.scan(TableName="locks")["Items"]
    assert held["owner"]["S"] == "the-winner"


def test_an_execution_whose_lock_step_failed_is_alerted_and_touches_nothing(aws):
    dynamodb, sns, topic, inbox = aws
    lock.acquire(dynamodb, "locks", "churn-production", "the-winner", "deploy", request(),
                 now=1000)
    cause = ('{"errorMessage": "An error occurred (AccessDeniedException) when calling the '
             'PutItem operation: KMS key access denied"}')
    detail = EndedDetail(executionArn=EXECUTION, status="FAILED", error="LockUnavailable",
                         cause=cause, input=json.dumps(request()))

    def registry() -> Any:
        raise AssertionError("nothing was deployed: the tags must stay as they are")

    answer = ended_logic(detail, dynamodb, "locks", registry, sns, topic)

    assert answer == {"released": False, "notified": True}
    [notice] = inbox()
    assert notice["Subject"] == "Work on churn-production could not start"
    assert "KMS key access denied" in notice["Message"] and EXECUTION in notice["Message"]
    [held] = dynamodb.scan(TableName="locks")["Items"]
    assert held["owner"]["S"] == "the-winner"


TRAINING = {"project": "churn", "data_location": "s3://data/data/churn/",
            "training_job_name": "churn-train-abc123", "trigger": "new_data"}


@pytest.mark.parametrize(("status", "error", "alerted"), [
    ("TIMED_OUT", None, True), ("ABORTED", None, True), ("FAILED", "States.Runtime", True),
    ("FAILED", "TrainingFailed", False),  # the machine's own failure path notified already
    ("SUCCEEDED", None, False)])
def test_a_training_execution_that_ended_outside_its_failure_path_is_alerted(
        aws, status, error, alerted):
    dynamodb, sns, topic, inbox = aws
    detail = EndedDetail(executionArn=EXECUTION.replace("Deploy", "Train"), status=status,
                         error=error, input=json.dumps(TRAINING))

    def registry() -> Any:
        raise AssertionError("training tags nothing here")

    answer = ended_logic(detail, dynamodb, "locks", registry, sns, topic)

    notices = inbox()
    assert answer["notified"] is alerted and len(notices) == int(alerted)
    if alerted:
        assert notices[0]["Subject"] == f"Training churn ended {status}"
        assert "stop-training-job --training-job-name churn-train-abc123" in notices[0][
            "Message"]
