"""Finding the deployed control plane from its stack outputs, and `mlops remote deployment`:
a version is deployed by tagging it, and the command reports what the control plane wrote."""

from __future__ import annotations

import boto3
import pytest
from typer.testing import CliRunner

from mlops_control import cli, names
from mlops_control.errors import ControlCentreError
from mlops_control.remote import deployment
from mlops_control.remote import outputs as outputs_mod
from tests.remote.conftest import REGION


def test_the_stack_outputs_lead_to_mlflow_with_the_credentials_in_the_stacks_secret(remote):
    remote.store.add("test-project", "1")
    assert remote.registry.get_model_version("test-project", "1").version == "1"
    # The server refuses anyone else: the credentials really came from Secrets Manager.
    assert remote.mlflow.authorized(remote.registry._headers()["Authorization"])


def test_an_old_stack_without_an_output_is_named_with_what_to_do(remote):
    bare = outputs_mod.StackOutputs(values={})
    with pytest.raises(ControlCentreError, match=r"no output DataBucketName.*cdk deploy"):
        _ = bare.data_bucket


def test_a_missing_stack_says_deploy_it_first():
    from moto import mock_aws

    with mock_aws(), pytest.raises(ControlCentreError, match="deploy it first"):
        outputs_mod.load(boto3.client("cloudformation", region_name=REGION))


def test_deployment_tags_the_version_and_returns_when_the_control_plane_answers(remote):
    remote.store.add("test-project", "3")
    asked = deployment.request(remote.registry, "test-project", "3", "production")
    assert remote.store.tags("test-project", "3")[names.TAG_DEPLOY] == "production"

    def control_plane_answers(_seconds):  # what the deploy state machine writes meanwhile
        from mlops_control.steps import status

        status.record(remote.store, "test-project", "3", names.Status.IN_SERVICE,
                      "test-project-production", "serving at test-project-production: deploy")

    outcome = deployment.wait(remote.registry, "test-project", "3", "production", asked,
                              poll_s=0, sleep=control_plane_answers)
    assert outcome.status == "in_service" and "serving at" in outcome.message


def test_a_status_from_an_earlier_deployment_is_not_taken_for_the_answer(remote):
    remote.store.add("test-project", "3", **{
        names.TAG_STATUS: "failed", names.TAG_ENDPOINT: "test-project-production",
        names.TAG_UPDATED_AT: "2020-01-01T00:00:00+00:00"})
    asked = deployment.request(remote.registry, "test-project", "3", "production")
    ticks = iter(range(100))
    with pytest.raises(ControlCentreError, match=r"no outcome .*\(last status: failed\)"):
        deployment.wait(remote.registry, "test-project", "3", "production", asked,
                        timeout_s=3, poll_s=0, sleep=lambda _: None,
                        clock=lambda: float(next(ticks)))


def test_a_version_already_serving_the_stage_asks_for_nothing(remote):
    remote.store.add("test-project", "3", deploy="production", **{
        names.TAG_STATUS: "in_service", names.TAG_ENDPOINT: "test-project-production"})
    assert deployment.request(remote.registry, "test-project", "3", "production") is None


def test_make_remote_deployment_without_waiting_tags_the_latest_version(remote):
    remote.store.add("test-project", "1")
    remote.store.add("test-project", "2")
    result = CliRunner().invoke(cli.app, ["remote", "deployment", "test-project/latest",
                                          "--stage", "staging", "--no-wait"])
    assert result.exit_code == 0, result.output
    assert remote.store.tags("test-project", "2")[names.TAG_DEPLOY] == "staging"
    assert names.TAG_DEPLOY not in remote.store.tags("test-project", "1")


def test_rollback_deprecates_the_live_version_and_reports_what_serves_after(remote):
    from mlops_control.steps import status

    remote.store.add("test-project", "1", **{
        names.TAG_STATUS: "superseded", names.TAG_ENDPOINT: "test-project-production"})
    remote.store.add("test-project", "2", deploy="production", **{
        names.TAG_STATUS: "in_service", names.TAG_ENDPOINT: "test-project-production"})

    def control_plane_rolls_back(_seconds):
        status.record(remote.store, "test-project", "1", names.Status.IN_SERVICE,
                      "test-project-production", "serving at test-project-production")
        status.record(remote.store, "test-project", "2", names.Status.RETIRED,
                      "test-project-production",
                      "deprecated; test-project-production rolled back to version 1")

    outcome = deployment.rollback(remote.registry, "test-project", "production", poll_s=0,
                                  sleep=control_plane_rolls_back)

    assert remote.store.tags("test-project", "2")[names.TAG_DEPRECATED] == "true"
    assert outcome.status == "retired"
    assert outcome.message.endswith("version 1 serves test-project-production")


def test_rollback_with_nothing_serving_says_so(remote):
    remote.store.add("test-project", "1")
    with pytest.raises(ControlCentreError, match="nothing to roll back"):
        deployment.rollback(remote.registry, "test-project", "production")


def test_remote_train_starts_the_train_state_machine_on_the_projects_prefix(remote):
    import json

    from mlops_control.remote import training

    sfn = remote.client("stepfunctions")
    arn, body = training.start(sfn, remote.outputs, "test-project", "20261126")

    started = json.loads(sfn.describe_execution(executionArn=arn)["input"])
    assert started == body
    assert body["data_location"] == "s3://data-bucket/data/test-project/"
    assert body["trigger"] == "manual" and len(body["training_job_name"]) <= 63
    sfn.stop_execution(executionArn=arn)
    with pytest.raises(ControlCentreError, match="training ABORTED"):
        training.wait(sfn, arn, poll_s=0)
