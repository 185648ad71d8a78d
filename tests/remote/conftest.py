"""The remote commands against moto (CloudFormation outputs, SageMaker, S3, Step Functions,
CloudWatch, Secrets Manager), botocore's Stubber where moto lacks an API (Model Monitor
schedules), and the HTTPS MLflow fake: every AWS request is validated by botocore."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from mlops_control import names
from mlops_control.registry import RegistryClient
from mlops_control.remote import outputs as outputs_mod
from tests import fake_mlflow
from tests.fakes import FakeRegistry

REGION = "eu-west-1"
ACCOUNT = "123456789012"
SMOKE = {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0], [3.0, 4.0]]}}


@dataclass
class Remote:
    outputs: outputs_mod.StackOutputs
    registry: RegistryClient
    store: FakeRegistry
    mlflow: fake_mlflow.FakeMlflowServer

    @staticmethod
    def client(service: str) -> Any:
        return boto3.client(service, region_name=REGION)


def stack_template(values: dict[str, str]) -> str:
    """A stack whose outputs are ``values`` (what `cdk deploy MlopsControl` leaves behind)."""
    return json.dumps({
        "Resources": {"Handle": {"Type": "AWS::CloudFormation::WaitConditionHandle"}},
        "Outputs": {k: {"Value": v} for k, v in values.items()}})


@pytest.fixture
def remote(monkeypatch, tmp_path) -> Iterator[Remote]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}.items():
        monkeypatch.setenv(key, value)
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.delenv(key, raising=False)
    store = FakeRegistry()
    with mock_aws(), fake_mlflow.running(store, tmp_path, "admin", "pw-from-secret") as server:
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "mlflow-cert.pem"))
        s3 = boto3.client("s3", region_name=REGION)
        for bucket in ("data-bucket", "artifact-bucket"):
            s3.create_bucket(Bucket=bucket,
                             CreateBucketConfiguration={"LocationConstraint": REGION})
        sm_secret = boto3.client("secretsmanager", region_name=REGION)
        auth = sm_secret.create_secret(Name="mlflow-admin", SecretString=json.dumps(
            {"username": "admin", "password": "pw-from-secret"}))["ARN"]
        hook = sm_secret.create_secret(Name="webhook", SecretString="old-secret")["ARN"]
        sfn = boto3.client("stepfunctions", region_name=REGION)
        machine = sfn.create_state_machine(
            name="train", roleArn=f"arn:aws:iam::{ACCOUNT}:role/states",
            definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})
        )["stateMachineArn"]
        values = {
            names.OUTPUT_DATA_BUCKET: "data-bucket",
            names.OUTPUT_ARTIFACT_BUCKET: "artifact-bucket",
            names.OUTPUT_IMAGE_URI: f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/shared:abc",
            names.OUTPUT_SAGEMAKER_ROLE: f"arn:aws:iam::{ACCOUNT}:role/sagemaker",
            names.OUTPUT_TRAIN_STATE_MACHINE: machine,
            names.OUTPUT_WEBHOOK_URL: "https://abc.lambda-url.eu-west-1.on.aws/",
            names.OUTPUT_WEBHOOK_SECRET: hook,
            names.OUTPUT_TRACKING_URI: server.url,
            names.OUTPUT_MLFLOW_AUTH_SECRET: auth,
            names.OUTPUT_ARTIFACTS_DESTINATION: "s3://artifact-bucket/mlflow",
            names.OUTPUT_DATA_PREFIX: "data",
        }
        cloudformation = boto3.client("cloudformation", region_name=REGION)
        cloudformation.create_stack(StackName=names.STACK_CONTROL,
                                    TemplateBody=stack_template(values))
        outputs = outputs_mod.load(cloudformation)
        registry = outputs_mod.registry(outputs, sm_secret, environ={})
        yield Remote(outputs=outputs, registry=registry, store=store, mlflow=server)
