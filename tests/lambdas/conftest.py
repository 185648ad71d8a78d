"""Lambda handlers on recorded AWS events, against moto (every request botocore-validated)
and an in-memory MLflow registry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from lambdas.common import adapters
from lambdas.common.env import get_environment
from mlops_control import names
from tests.fakes import FakeRegistry

REGION = "eu-west-1"
SECRET = "webhook-secret-for-tests"
ROLE = "arn:aws:iam::123456789012:role/states"
PASSTHROUGH = {"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}


@dataclass
class Aws:
    sfn: Any
    deploy_arn: str
    retire_arn: str
    train_arn: str
    registry: FakeRegistry

    def executions(self, arn: str) -> list[dict[str, Any]]:
        found = self.sfn.list_executions(stateMachineArn=arn)["executions"]
        return [{**e, "input": json.loads(self.sfn.describe_execution(
            executionArn=e["executionArn"])["input"])} for e in found]


class Context:
    function_name = "test"
    memory_limit_in_mb = 256
    invoked_function_arn = f"arn:aws:lambda:{REGION}:123456789012:function:test"
    aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e812345678"


@pytest.fixture
def context() -> Context:
    return Context()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[Aws]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "MLOpsControl")
    with mock_aws():
        adapters.client.cache_clear()
        get_environment.cache_clear()
        from aws_lambda_powertools.utilities import parameters

        parameters.clear_caches()
        sfn = boto3.client("stepfunctions", region_name=REGION)
        arns = {name: sfn.create_state_machine(name=name, definition=json.dumps(PASSTHROUGH),
                                               roleArn=ROLE)["stateMachineArn"]
                for name in ("deploy", "retire", "train")}
        secret_arn = boto3.client("secretsmanager", region_name=REGION).create_secret(
            Name="webhook", SecretString=SECRET)["ARN"]
        registry = FakeRegistry()
        monkeypatch.setattr(adapters, "registry_client", lambda env: registry)
        env = {names.ENV_TRACKING_URI: "https://mlflow.example.com",
               names.ENV_DEPLOY_STATE_MACHINE: arns["deploy"],
               names.ENV_RETIRE_STATE_MACHINE: arns["retire"],
               names.ENV_TRAIN_STATE_MACHINE: arns["train"],
               names.ENV_STAGES: "staging,production",
               names.ENV_PROJECTS: "test-project",
               names.ENV_DATA_PREFIX: "data",
               names.ENV_WEBHOOK_SECRET_ARN: secret_arn}
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        yield Aws(sfn=sfn, deploy_arn=arns["deploy"], retire_arn=arns["retire"],
                  train_arn=arns["train"], registry=registry)
        adapters.client.cache_clear()
        get_environment.cache_clear()
