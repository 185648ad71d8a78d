"""The SageMaker backend against moto (requests validated by botocore), with the SageMaker
parts moto lacks (UpdateEndpoint, Creating/Updating, scripted models, faults) from
``tests/moto_sagemaker.py``, shared with the state machine executions."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from mlops_control import names
from mlops_control.backends import sagemaker as sm
from mlops_control.steps.backend import DeploymentFailed, DeployTarget
from tests import moto_sagemaker
from tests.fakes import FakeRegistry
from tests.moto_sagemaker import Serving, World

REGION = moto_sagemaker.REGION
ENDPOINT = "test-project-production"
SMOKE = {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0], [3.0, 4.0]]}}
CONFIG = sm.SageMakerConfig(
    image_uri="123456789012.dkr.ecr.eu-west-1.amazonaws.com/shared:abc",
    role_arn="arn:aws:iam::123456789012:role/sagemaker", capture_uri="s3://artifacts/capture",
    region=REGION, stages={"production": sm.StageConfig()},
    artifacts_destination="s3://artifacts/mlflow")
ONE_FOR_TWO = json.dumps({"predictions": [0]})


def target(version: str = "1") -> DeployTarget:
    return DeployTarget(project="test-project", stage="production", version=version,
                        endpoint=ENDPOINT, run_id=f"run-{version}", smoke_payload=SMOKE)


@pytest.fixture
def world(monkeypatch) -> World:
    world = World()
    moto_sagemaker.install(monkeypatch, world)
    return world


@pytest.fixture
def clients(monkeypatch, world):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield {name: boto3.client(name, region_name=REGION) for name in (
            "sagemaker", "sagemaker-runtime", "cloudwatch", "application-autoscaling")}


@pytest.fixture
def registry() -> FakeRegistry:
    registry = FakeRegistry()
    for version in ("1", "2"):
        registry.add("test-project", version,
                     source=f"mlflow-artifacts:/1/models/m-{version}/artifacts")
    return registry


def backend(clients, registry, token: str = "t1",
            config: sm.SageMakerConfig = CONFIG) -> sm.SageMakerBackend:
    return sm.SageMakerBackend(
        sagemaker=clients["sagemaker"], runtime=clients["sagemaker-runtime"],
        cloudwatch=clients["cloudwatch"], autoscaling=clients["application-autoscaling"],
        config=config, registry=registry, poll_s=0, sleep=lambda s: None, token=lambda: token)


def live_config(clients) -> str:
    return clients["sagemaker"].describe_endpoint(EndpointName=ENDPOINT)["EndpointConfigName"]


def endpoint_names(clients) -> set[str]:
    return {e["EndpointName"] for e in clients["sagemaker"].list_endpoints()["Endpoints"]}


def test_a_first_deployment_creates_model_config_alarms_endpoint_scaling_and_dashboards(
        clients, registry, world):
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
    assert {a["AlarmName"] for a in alarms} == set(names.alarm_names(ENDPOINT))
    boards = {d["DashboardName"] for d in clients["cloudwatch"].list_dashboards()["DashboardEntries"]}
    assert boards == {"test-project_metrics", "test-project_stats"}
    targets = clients["application-autoscaling"].describe_scalable_targets(
        ServiceNamespace="sagemaker")["ScalableTargets"]
    assert targets[0]["ResourceId"] == "endpoint/test-project-production/variant/AllTraffic"
    # Nothing served before: the new endpoint itself took the smoke test.
    [smoke] = world.invocations
    assert (smoke.endpoint, smoke.version) == (ENDPOINT, "1")
    assert sm_backend.live("test-project") == {"production": "1"}


def test_a_failed_smoke_test_on_a_new_endpoint_removes_it_and_says_why(clients, registry, world):
    world.answers["1"] = lambda request: ONE_FOR_TWO
    sm_backend = backend(clients, registry)
    with pytest.raises(DeploymentFailed, match="1 predictions for 2 rows"):
        sm_backend.deploy(target())
    assert endpoint_names(clients) == set()
    assert sm_backend.live("test-project") == {}


def test_a_replacement_is_smoke_tested_on_a_candidate_while_the_old_version_serves(
        clients, registry, world):
    backend(clients, registry, token="t1").deploy(target("1"))
    old_config = live_config(clients)
    world.invocations.clear()

    sm_backend = backend(clients, registry, token="t2")
    sm_backend.deploy(target("2"))

    [smoke] = world.invocations
    assert smoke.endpoint == names.candidate_endpoint_name(ENDPOINT, "t2")
    assert smoke.version == "2"
    assert smoke.endpoints[ENDPOINT] == Serving("InService", old_config, "1")
    # Then one blue/green update of the live endpoint, to the final single-variant config.
    assert world.updates == [(ENDPOINT, "test-project-production-v2-t2")]
    assert endpoint_names(clients) == {ENDPOINT}  # the candidate is gone
    assert sm_backend.live("test-project") == {"production": "2"}
    final = clients["sagemaker"].describe_endpoint_config(
        EndpointConfigName="test-project-production-v2-t2")
    assert [v["VariantName"] for v in final["ProductionVariants"]] == [names.SM_VARIANT]
    [scaling] = clients["application-autoscaling"].describe_scalable_targets(
        ServiceNamespace="sagemaker")["ScalableTargets"]
    assert scaling["ResourceId"] == f"endpoint/{ENDPOINT}/variant/{names.SM_VARIANT}"


def test_a_replacement_that_fails_its_smoke_test_never_touches_the_live_endpoint(
        clients, registry, world):
    backend(clients, registry, token="t1").deploy(target("1"))
    old_config = live_config(clients)
    world.answers["2"] = lambda request: ONE_FOR_TWO

    sm_backend = backend(clients, registry, token="t2")
    with pytest.raises(DeploymentFailed, match="1 predictions for 2 rows"):
        sm_backend.deploy(target("2"))

    assert world.updates == []
    assert world.endpoints() == {ENDPOINT: Serving("InService", old_config, "1")}


def test_a_candidate_that_does_not_start_is_deleted_and_the_reason_given(
        clients, registry, world):
    backend(clients, registry, token="t1").deploy(target("1"))
    world.endpoint_fails = "CannotStartContainerError: no /ping"

    with pytest.raises(DeploymentFailed, match="--t2 is Failed: CannotStartContainerError"):
        backend(clients, registry, token="t2").deploy(target("2"))

    assert world.updates == [] and endpoint_names(clients) == {ENDPOINT}


def test_a_failure_after_the_switch_returns_once_the_old_version_serves_again(
        clients, registry, world):
    backend(clients, registry, token="t1").deploy(target("1"))
    old_config = live_config(clients)
    world.scaling_fails = "scalable target refused (test)"

    with pytest.raises(DeploymentFailed, match="scalable target refused"):
        backend(clients, registry, token="t2").deploy(target("2"))

    assert world.updates == [(ENDPOINT, "test-project-production-v2-t2"), (ENDPOINT, old_config)]
    # Read without letting anything settle: the backend already waited for the revert.
    assert world.endpoints()[ENDPOINT] == Serving("InService", old_config, "1")


def test_when_the_old_version_cannot_be_put_back_the_error_says_so(clients, registry, world):
    backend(clients, registry, token="t1").deploy(target("1"))
    world.scaling_fails = "scalable target refused (test)"
    world.refused_configs.add(live_config(clients))

    with pytest.raises(DeploymentFailed, match="undoing it failed too"):
        backend(clients, registry, token="t2").deploy(target("2"))


def test_candidates_left_behind_are_deleted_by_the_next_deployment_and_by_retire(
        clients, registry, world):
    sm_backend = backend(clients, registry, token="t1")
    sm_backend.deploy(target("1"))
    stale = names.candidate_endpoint_name(ENDPOINT, "dead")
    clients["sagemaker"].create_endpoint(EndpointName=stale,
                                         EndpointConfigName=live_config(clients))
    # A candidate never counts as a live endpoint of any project and stage.
    assert sm_backend.live("test-project") == {"production": "1"}

    backend(clients, registry, token="t2").deploy(target("2"))
    assert endpoint_names(clients) == {ENDPOINT}

    clients["sagemaker"].create_endpoint(EndpointName=stale,
                                         EndpointConfigName=live_config(clients))
    sm_backend.retire("test-project", "production")
    assert endpoint_names(clients) == set()
    assert clients["sagemaker"].list_endpoint_configs()["EndpointConfigs"] == []
    assert clients["sagemaker"].list_models()["Models"] == []


def test_retire_removes_endpoint_alarms_dashboards_configs_and_models(clients, registry, world):
    sm_backend = backend(clients, registry)
    sm_backend.deploy(target())
    sm_backend.retire("test-project", "production")
    assert sm_backend.live("test-project") == {}
    assert clients["cloudwatch"].describe_alarms()["MetricAlarms"] == []
    assert clients["cloudwatch"].list_dashboards()["DashboardEntries"] == []
    assert clients["sagemaker"].list_endpoint_configs()["EndpointConfigs"] == []


def test_the_dashboards_stay_while_another_stage_of_the_project_serves(clients, registry,
                                                                          world):
    two_stages = replace(CONFIG, stages={"staging": sm.StageConfig(),
                                         "production": sm.StageConfig()})
    sm_backend = backend(clients, registry, config=two_stages)
    sm_backend.deploy(target())
    sm_backend.deploy(replace(target(), stage="staging", endpoint="test-project-staging"))
    boards = {"test-project_metrics", "test-project_stats"}

    sm_backend.retire("test-project", "staging")
    assert sm_backend.live("test-project") == {"production": "1"}
    assert {d["DashboardName"] for d in
            clients["cloudwatch"].list_dashboards()["DashboardEntries"]} == boards

    sm_backend.retire("test-project", "production")
    assert sm_backend.live("test-project") == {}
    assert clients["cloudwatch"].list_dashboards()["DashboardEntries"] == []


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


@pytest.mark.parametrize("project,stage", [("test-project", "production"), ("a", "b"),
                                           ("p" * 48, "production"), ("a-b", "c")])
def test_a_candidate_name_is_a_valid_endpoint_name_that_no_project_and_stage_can_take(
        project, stage):
    endpoint = names.endpoint_name(project, stage)
    candidate = names.candidate_endpoint_name(endpoint, "0123abcd")
    assert len(candidate) <= 63
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}", candidate)  # botocore's pattern
    assert candidate.startswith(names.candidate_endpoint_prefix(endpoint))
    # Read as <project>-<stage>, the project would end with "-", which no project may.
    maybe_project, _, maybe_stage = candidate.rpartition("-")
    assert not (names.PROJECT_NAME_PATTERN.match(maybe_project)
                and names.STAGE_PATTERN.match(maybe_stage))


def test_long_endpoints_that_share_a_prefix_never_share_candidates():
    first, second = (names.endpoint_name("p" * 48, s) for s in ("production", "productionb"))
    assert names.candidate_endpoint_prefix(first) != names.candidate_endpoint_prefix(second)
    assert not names.candidate_endpoint_prefix(second).startswith(
        names.candidate_endpoint_prefix(first))
