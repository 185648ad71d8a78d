"""The pieces of `make aws-smoke`, each against moto, Stubber and the MLflow fake. The whole run
needs a real account (docs/aws.md); here the world's answers (the data trigger, the training
job) are played by the tests, through the real data-trigger logic where there is one."""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from mlops_control import names
from mlops_control.backends import sagemaker as sm
from mlops_control.errors import ControlCentreError
from mlops_control.remote import smoke
from mlops_control.steps.backend import DeploymentFailed, DeployTarget
from tests import events as recorded
from tests.remote.conftest import REGION, SMOKE


def make(remote, runtime=None, sleep=lambda _: None) -> smoke.AwsSmoke:
    c = remote.client
    clients = smoke.Clients(s3=c("s3"), sfn=c("stepfunctions"), sagemaker=c("sagemaker"),
                            runtime=runtime or c("sagemaker-runtime"),
                            cloudwatch=c("cloudwatch"), autoscaling=c("application-autoscaling"))
    return smoke.AwsSmoke(clients=clients, outputs=remote.outputs, registry=remote.registry,
                          region=REGION, run_id="r1", poll_s=0, timeout_s=30, sleep=sleep)


def serve_version_1(remote) -> None:
    """Given: test-project-staging serves version 1 (made as the control plane makes it)."""
    remote.store.add("test-project", "1")
    c = remote.client
    config = sm.SageMakerConfig(image_uri=remote.outputs.image_uri,
                                role_arn=remote.outputs.sagemaker_role,
                                capture_uri="s3://artifact-bucket/capture", region=REGION,
                                stages={"staging": sm.StageConfig()})
    from moto.sagemakerruntime.models import sagemakerruntime_backends

    sagemakerruntime_backends["123456789012"][REGION].results_queue.append(
        (json.dumps({"predictions": [0, 1]}), "application/json", "AllTraffic", ""))
    backend = sm.SageMakerBackend(sagemaker=c("sagemaker"), runtime=c("sagemaker-runtime"),
                                  cloudwatch=c("cloudwatch"),
                                  autoscaling=c("application-autoscaling"), config=config,
                                  registry=remote.registry, poll_s=0, sleep=lambda _: None,
                                  token=lambda: "t1")
    backend.deploy(DeployTarget(project="test-project", stage="staging", version="1",
                                endpoint="test-project-staging", run_id="run-1",
                                smoke_payload=SMOKE))


def test_preflight_refuses_when_an_endpoint_of_the_project_exists(remote):
    serve_version_1(remote)
    with pytest.raises(ControlCentreError, match="test-project-staging already exist"):
        make(remote).preflight()


def test_preflight_refuses_when_a_version_is_tagged_for_deployment(remote):
    remote.store.add("test-project", "4", deploy="production")
    with pytest.raises(ControlCentreError, match="versions 4 are tagged deploy"):
        make(remote).preflight()


def test_train_uploads_the_data_follows_the_execution_it_starts_and_finds_the_version(remote):
    from lambdas import data_trigger
    from lambdas.common.env import DataTriggerEnv

    run = make(remote)
    sfn = remote.client("stepfunctions")
    env = DataTriggerEnv.model_validate({
        names.ENV_TRAIN_STATE_MACHINE: remote.outputs.train_state_machine,
        names.ENV_DATA_PREFIX: "data", names.ENV_PROJECTS: "test-project"})
    world = iter(["data trigger", "execution ends", "version registered"] + ["idle"] * 10)

    def the_world_moves(_seconds):
        step = next(world)
        if step == "data trigger":  # S3 -> EventBridge -> the data trigger Lambda's logic
            event = recorded.load("s3_object_created")
            event["detail"]["bucket"]["name"] = "data-bucket"
            event["detail"]["object"]["key"] = run.data_key
            data_trigger.start_training(event, env, sfn)
        elif step == "execution ends":
            [execution] = sfn.list_executions(
                stateMachineArn=remote.outputs.train_state_machine)["executions"]
            body = json.loads(sfn.describe_execution(
                executionArn=execution["executionArn"])["input"])
            remote.store.add("test-project", "7", **{
                names.TAG_LINEAGE_TRAINING_JOB: body["training_job_name"]})
            sfn.stop_execution(executionArn=execution["executionArn"], cause="test")

    run.sleep = the_world_moves
    with pytest.raises(ControlCentreError, match="training execution ABORTED"):
        run.train(b"a,b,target\n1,2,0\n")
    uploaded = remote.client("s3").get_object(Bucket="data-bucket", Key=run.data_key)
    assert uploaded["Body"].read() == b"a,b,target\n1,2,0\n"
    assert run.data_key == "data/test-project/aws-smoke-r1.csv"
    assert run.training_job  # found through the execution's input: clean-up can remove it


def test_trained_version_is_the_one_whose_lineage_names_the_training_job(remote):
    remote.store.add("test-project", "6", **{names.TAG_LINEAGE_TRAINING_JOB: "other-job"})
    remote.store.add("test-project", "7", **{names.TAG_LINEAGE_TRAINING_JOB: "smoke-job"})
    run = make(remote)
    run.training_job = "smoke-job"
    assert run.trained_version().version == "7"


def stubbed_runtime(answer: dict):
    client = boto3.client("sagemaker-runtime", region_name=REGION, aws_access_key_id="x",
                          aws_secret_access_key="x")
    stub = Stubber(client)
    body = json.dumps(answer).encode()
    import io

    stub.add_response("invoke_endpoint", {"Body": StreamingBody(io.BytesIO(body), len(body))},
                      sm.smoke_request("test-project-staging", SMOKE))
    stub.activate()
    return client


def test_invoke_sends_the_versions_own_test_slice_and_wants_a_prediction_per_row(remote):
    remote.store.add("test-project", "7")
    remote.store.smoke["run-7"] = SMOKE
    run = make(remote, runtime=stubbed_runtime({"predictions": [1, 0]}))
    run.version = "7"
    assert run.invoke() == "2 predictions for the 2-row test slice"

    wrong = make(remote, runtime=stubbed_runtime({"predictions": [1]}))
    wrong.version = "7"
    with pytest.raises(DeploymentFailed, match="1 predictions for 2 rows"):
        wrong.invoke()


def test_dashboards_must_both_exist_with_widgets(remote):
    run = make(remote)
    with pytest.raises(Exception, match=r"does not exist|ResourceNotFound"):
        run.dashboards()
    serve_version_1(remote)
    assert run.dashboards() == "test-project_metrics, test-project_stats"


def test_clean_up_removes_everything_the_run_made(remote):
    serve_version_1(remote)
    s3 = remote.client("s3")
    s3.put_object(Bucket="data-bucket", Key="data/test-project/aws-smoke-r1.csv", Body=b"x")
    s3.put_object(Bucket="artifact-bucket", Key="training-output/job-1/output/model.tar.gz",
                  Body=b"x")
    run = make(remote)
    run.data_key, run.training_job, run.version = (
        "data/test-project/aws-smoke-r1.csv", "job-1", "1")
    run.endpoint_made = True

    report = run.clean_up()

    assert "test-project-staging" in report
    c = remote.client
    assert c("sagemaker").list_endpoints()["Endpoints"] == []
    assert c("sagemaker").list_endpoint_configs()["EndpointConfigs"] == []
    assert c("cloudwatch").list_dashboards()["DashboardEntries"] == []
    assert c("cloudwatch").describe_alarms()["MetricAlarms"] == []
    assert s3.list_objects_v2(Bucket="data-bucket").get("KeyCount") == 0
    assert s3.list_objects_v2(Bucket="artifact-bucket").get("KeyCount") == 0
    assert ("test-project", "1") not in remote.store.versions


def test_a_run_that_fails_early_still_cleans_up_and_reports_each_step(remote):
    serve_version_1(remote)  # preflight will refuse
    run = make(remote)
    with pytest.raises(ControlCentreError):
        run.run(b"a,target\n1,0\n")
    assert [(s.name, s.ok) for s in run.steps] == [("preflight", False), ("clean up", True)]
    # It made nothing, so it removed nothing: the endpoint it found is not its own.
    assert run.steps[-1].detail == "removed nothing (nothing was made)"
    assert remote.client("sagemaker").list_endpoints()["Endpoints"] != []


def test_the_smoke_trains_on_the_projects_full_data_with_a_target_column():
    from tests.conftest import PROJECTS

    data = smoke.project_data_csv(PROJECTS / "test-project").decode().splitlines()
    assert data[0].split(",")[-1] == "target"
    assert len(data) - 1 > 100  # the whole bundled set, not the 40-row test slice


def test_clean_up_also_retires_a_stage_the_promotion_gate_chose(remote):
    """--stage production, but the gate had tagged deploy=staging: after a passed preflight,
    any endpoint serving the run's version is the run's and goes too."""
    serve_version_1(remote)  # test-project-staging serves version 1
    run = make(remote)
    run.stage, run.version, run.preflight_passed = "production", "1", True

    assert "test-project-staging" in run.clean_up()
    assert remote.client("sagemaker").list_endpoints()["Endpoints"] == []
