"""The SageMaker backend against moto (requests validated by botocore), and the update path
through botocore's Stubber (moto 5.2.5 has no UpdateEndpoint)."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from mlops_control import names
from mlops_control.backends import sagemaker as sm
from mlops_control.steps.backend import DeploymentFailed, DeployTarget
from tests.fakes import FakeRegistry

REGION = "eu-west-1"
SMOKE = {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0], [3.0, 4.0]]}}
CONFIG = sm.SageMakerConfig(
    image_uri="123456789012.dkr.ecr.eu-west-1.amazonaws.com/shared:abc",
    role_arn="arn:aws:iam::123456789012:role/sagemaker", capture_uri="s3://artifacts/capture",
    region=REGION, stages={"production": sm.StageConfig()},
    artifacts_destination="s3://artifacts/mlflow")


def target(version: str = "1") -> DeployTarget:
    return DeployTarget(project="test-project", stage="production", version=version,
                        endpoint="test-project-production", run_id=f"run-{version}",
                        smoke_payload=SMOKE)


@pytest.fixture
def clients(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield {name: boto3.client(name, region_name=REGION) for name in (
            "sagemaker", "sagemaker-runtime", "cloudwatch", "application-autoscaling")}


def backend(clients, registry) -> sm.SageMakerBackend:
    return sm.SageMakerBackend(
        sagemaker=clients["sagemaker"], runtime=clients["sagemaker-runtime"],
        cloudwatch=clients["cloudwatch"], autoscaling=clients["application-autoscaling"],
        config=CONFIG, registry=registry, poll_s=0, sleep=lambda s: None, token=lambda: "t1")


def queue_answer(body: str) -> None:
    from moto.sagemakerruntime.models import sagemakerruntime_backends

    sagemakerruntime_backends["123456789012"][REGION].results_queue.append(
        (body, "application/json", names.SM_VARIANT, ""))


def test_a_first_deployment_creates_model_config_alarms_endpoint_scaling_and_dashboards(clients):
    registry = FakeRegistry()
    registry.add("test-project", "1", source="mlflow-artifacts:/1/models/m-1/artifacts")
    queue_answer(json.dumps({"predictions": [0, 1]}))
    sm_backend = backend(clients, registry)
    sm_backend.deploy(target())

    model = clients["sagemaker"].describe_model(ModelName="test-project-production-v1-t1")
    assert model["PrimaryContainer"]["ModelDataSource"]["S3DataSource"] == {
        "S3Uri": "s3://artifacts/mlflow/1/models/m-1/artifacts/", "S3DataType": "S3Prefix",
        "CompressionType": "None"}
    config = clients["sagemaker"].describe_endpoint_config(
        EndpointConfigName="test-project-production-v1-t1")
    assert config["DataCaptureConfig"]["EnableCapture"] is True
    alarms = clients["cloudwatch"].describe_alarms()["MetricAlarms"]
    assert {a["AlarmName"] for a in alarms} == set(names.alarm_names("test-project-production"))
    boards = {d["DashboardName"] for d in clients["cloudwatch"].list_dashboards()["DashboardEntries"]}
    assert boards == {"test-project_metrics", "test-project_stats"}
    targets = clients["application-autoscaling"].describe_scalable_targets(
        ServiceNamespace="sagemaker")["ScalableTargets"]
    assert targets[0]["ResourceId"] == "endpoint/test-project-production/variant/AllTraffic"
    assert sm_backend.live("test-project") == {"production": "1"}


def test_a_failed_smoke_test_on_a_new_endpoint_removes_it_and_says_why(clients):
    registry = FakeRegistry()
    registry.add("test-project", "1", source="s3://artifacts/mlflow/1/models/m-1/artifacts")
    queue_answer(json.dumps({"predictions": [0]}))  # one prediction for two rows
    sm_backend = backend(clients, registry)
    with pytest.raises(DeploymentFailed, match="1 predictions for 2 rows"):
        sm_backend.deploy(target())
    assert sm_backend.live("test-project") == {}


def test_retire_removes_endpoint_alarms_dashboards_configs_and_models(clients):
    registry = FakeRegistry()
    registry.add("test-project", "1")
    queue_answer(json.dumps({"predictions": [0, 1]}))
    sm_backend = backend(clients, registry)
    sm_backend.deploy(target())
    sm_backend.retire("test-project", "production")
    assert sm_backend.live("test-project") == {}
    assert clients["cloudwatch"].describe_alarms()["MetricAlarms"] == []
    assert clients["cloudwatch"].list_dashboards()["DashboardEntries"] == []
    assert clients["sagemaker"].list_endpoint_configs()["EndpointConfigs"] == []


def test_models_outside_s3_cannot_be_deployed_to_sagemaker():
    with pytest.raises(DeploymentFailed, match="not in S3"):
        sm.model_data_uri("file:///tmp/mlruns/1/models/m/artifacts", None)


def test_the_blue_green_update_request_is_valid_for_botocore():
    client = boto3.client("sagemaker", region_name=REGION, aws_access_key_id="x",
                          aws_secret_access_key="x")
    spec = sm.DeploymentSpec.create(target("2"), "s3://artifacts/m/", "t2")
    request = sm.update_endpoint_request(spec, CONFIG)
    with Stubber(client) as stub:
        stub.add_response("update_endpoint", {"EndpointArn": "arn:aws:sagemaker:eu-west-1:"
                                              "123456789012:endpoint/test-project-production"},
                          request)
        client.update_endpoint(**request)  # Stubber validates the parameters against the model
    policy = request["DeploymentConfig"]
    assert policy["AutoRollbackConfiguration"]["Alarms"] == [
        {"AlarmName": a} for a in names.alarm_names("test-project-production")]


def test_resource_names_fit_sagemaker_limits():
    long_endpoint = "p" * 48 + "-production"
    name = names.sagemaker_resource_name(long_endpoint, "123456789", "abcdef12345")
    assert len(name) <= 63 and name.endswith("-v123456789-abcdef12")
