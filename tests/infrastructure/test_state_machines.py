"""The synthesized train, deploy and retire state machines, executed end to end in moto.

Real: the definitions from the session's one synth, moto's ASL interpreter, moto's SageMaker,
CloudWatch, Application Auto Scaling, SNS, SQS, Secrets Manager and S3, botocore's parameter
validation of every request (the Tasks' and the glue Lambdas'), the glue Lambda handlers
themselves (called in-process with the template's environment), and an MLflow REST server
over HTTPS with basic auth whose credentials the Lambdas read from the template's secret.

Patched (see ``moto_sfn``'s docstring for each reason): validation turned back on in moto's
Step Functions clients, ``sagemakerruntime``/``applicationautoscaling`` mapped to boto3 names,
blob outputs read as text, Lambda Invoke routed to the real handler, Wait states not slept,
and SageMaker's missing parts: UpdateEndpoint, Creating/Updating/InProgress before a change
settles, injected faults, and the model behind an endpoint (scripted per version: no
container runs).

Every test ends by asserting that no request failed botocore's validation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from mlops_control import names
from tests import fake_mlflow
from tests.fakes import FakeRegistry
from tests.infrastructure.moto_sfn import REGION, Harness, MotoStack, World, patched_interpreter
from tests.moto_sagemaker import Serving

pytestmark = pytest.mark.infrastructure

PROJECT = "test-project"
ENDPOINT = names.endpoint_name(PROJECT, "production")
SMOKE = {"dataframe_split": {"columns": ["a", "b"], "data": [[1.0, 2.0], [3.0, 4.0]]}}


@dataclass
class Aws:
    harness: Harness
    registry: FakeRegistry
    mlflow: fake_mlflow.FakeMlflowServer
    sagemaker: Any
    cloudwatch: Any
    autoscaling: Any
    sqs: Any
    queue_url: str

    @property
    def world(self) -> World:
        return self.harness.world

    def notifications(self) -> list[dict[str, str]]:
        """What the failure topic delivered (to an SQS queue subscribed to it)."""
        found = []
        while True:
            batch = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                             WaitTimeSeconds=0).get("Messages", [])
            if not batch:
                return found
            for message in batch:
                envelope = json.loads(message["Body"])
                found.append({"subject": envelope.get("Subject"), "message": envelope["Message"]})
                self.sqs.delete_message(QueueUrl=self.queue_url,
                                        ReceiptHandle=message["ReceiptHandle"])

    def endpoint(self) -> dict[str, Any] | None:
        """The endpoint once any change in flight has settled (as a person watching the
        console would see it a few minutes later), or None when there is none."""
        for _ in range(10):
            try:
                described = self.sagemaker.describe_endpoint(EndpointName=ENDPOINT)
            except self.sagemaker.exceptions.ClientError:
                return None
            if described["EndpointStatus"] not in ("Creating", "Updating"):
                return described
        raise AssertionError(f"{ENDPOINT} never settled: {described['EndpointStatus']}")

    def serving_version(self) -> str | None:
        """The model version the endpoint's current config serves, from its tags."""
        described = self.endpoint()
        if described is None:
            return None
        arn = self.sagemaker.describe_endpoint_config(
            EndpointConfigName=described["EndpointConfigName"])["EndpointConfigArn"]
        tags = {t["Key"]: t["Value"] for t in self.sagemaker.list_tags(ResourceArn=arn)["Tags"]}
        return tags[names.SM_TAG_VERSION]

    def candidates(self) -> list[str]:
        """The endpoint's candidate endpoints that still exist."""
        prefix = names.candidate_endpoint_prefix(ENDPOINT)
        return [e["EndpointName"] for e in self.sagemaker.list_endpoints()["Endpoints"]
                if e["EndpointName"].startswith(prefix)]

    def dashboards(self) -> set[str]:
        return {d["DashboardName"] for d in
                self.cloudwatch.list_dashboards()["DashboardEntries"]}

    def alarms(self) -> set[str]:
        return {a["AlarmName"] for a in self.cloudwatch.describe_alarms()["MetricAlarms"]}

    def tags(self, version: str) -> dict[str, str]:
        return self.registry.tags(PROJECT, version)

    def add_version(self, version: str, **tags: str) -> None:
        self.registry.add(PROJECT, version, source=(
            f"mlflow-artifacts:/1/models/m-{version}/artifacts"), **tags)
        self.registry.smoke[f"run-{version}"] = SMOKE

    def deploy(self, version: str, replaces: str | None = None, **extra: Any):
        payload = {"project": PROJECT, "stage": "production", "version": version,
                   "replaces": replaces, "reason": f"deploy to version {version} (test)",
                   "rollback_of_deprecated": False, **extra}
        return self.harness.run(self.harness.machine("WorkflowsDeploy"), payload)

    def retire(self, version: str | None, reason: str = "no version is tagged (test)"):
        payload = {"project": PROJECT, "stage": "production", "version": version,
                   "reason": reason}
        return self.harness.run(self.harness.machine("WorkflowsRetire"), payload)


@pytest.fixture
def aws(synth, monkeypatch, tmp_path) -> Iterator[Aws]:
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION,
                       "POWERTOOLS_TRACE_DISABLED": "true"}.items():
        monkeypatch.setenv(key, value)
    from aws_lambda_powertools.utilities import parameters

    from lambdas.common import adapters

    with mock_aws(config={"stepfunctions": {"execute_state_machine": True}}):
        adapters.client.cache_clear()
        parameters.clear_caches()
        stack = MotoStack(synth.templates[names.STACK_CONTROL])
        # The server accepts exactly the credentials generated into the template's secret.
        admin = stack.logical_id("MlflowAdmin")
        stack.ref(admin)
        credentials = json.loads(stack.secret_values[admin])
        registry = FakeRegistry()
        with fake_mlflow.running(registry, tmp_path, credentials["username"],
                                 credentials["password"]) as mlflow:
            monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "mlflow-cert.pem"))
            sqs = boto3.client("sqs", region_name=REGION)
            queue_url = sqs.create_queue(QueueName="notifications")["QueueUrl"]
            queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=[
                "QueueArn"])["Attributes"]["QueueArn"]
            boto3.client("sns", region_name=REGION).subscribe(
                TopicArn=stack.ref(stack.logical_id("NotificationsFailures")),
                Protocol="sqs", Endpoint=queue_arn)
            with patched_interpreter(monkeypatch, stack, World(), overrides={
                    names.ENV_TRACKING_URI: mlflow.url}) as harness:
                yield Aws(harness=harness, registry=registry, mlflow=mlflow,
                          sagemaker=boto3.client("sagemaker", region_name=REGION),
                          cloudwatch=boto3.client("cloudwatch", region_name=REGION),
                          autoscaling=boto3.client("application-autoscaling",
                                                   region_name=REGION),
                          sqs=sqs, queue_url=queue_url)
                assert harness.calls.invalid == [], "requests botocore refused"
        adapters.client.cache_clear()


def deployed(aws: Aws, version: str, replaces: str | None = None) -> None:
    """Given: ``version`` serves the endpoint, through the deploy state machine itself."""
    aws.add_version(version, deploy="production")
    execution = aws.deploy(version, replaces=replaces)
    assert execution.status == "SUCCEEDED", execution.error
    assert aws.serving_version() == version


# --- deploy ---------------------------------------------------------------------------------
def test_a_first_deployment_ends_in_service_with_tags_alarms_scaling_and_dashboards(aws):
    aws.add_version("1", deploy="production")
    execution = aws.deploy("1")

    assert execution.status == "SUCCEEDED", execution.error
    # The endpoint reported Creating first: the machine waited and looked again.
    assert execution.states.count("WaitForEndpoint") == 2
    assert aws.endpoint()["EndpointStatus"] == "InService"
    assert aws.serving_version() == "1"
    # Nothing served before: the new endpoint itself took the smoke test, no candidate.
    [smoke] = aws.world.invocations
    assert (smoke.endpoint, smoke.version) == (ENDPOINT, "1")
    assert "CreateCandidateEndpoint" not in execution.states
    tags = aws.tags("1")
    assert tags[names.TAG_STATUS] == "in_service"
    assert tags[names.TAG_ENDPOINT] == ENDPOINT
    assert "serving at test-project-production" in tags[names.TAG_MESSAGE]
    assert aws.dashboards() == {"test-project_metrics", "test-project_stats"}
    assert aws.alarms() == set(names.alarm_names(ENDPOINT))
    [target] = aws.autoscaling.describe_scalable_targets(
        ServiceNamespace="sagemaker")["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4)  # production in cdk.json
    [policy] = aws.autoscaling.describe_scaling_policies(
        ServiceNamespace="sagemaker")["ScalingPolicies"]
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 200.0
    [model] = aws.harness.calls.of("create_model")
    assert model["PrimaryContainer"]["ModelDataSource"]["S3DataSource"]["S3Uri"] == (
        f"s3://{aws.harness.stack.ref(aws.harness.stack.logical_id('StorageArtifacts'))}"
        "/mlflow/1/models/m-1/artifacts/")
    [config] = aws.harness.calls.of("create_endpoint_config")
    assert config["DataCaptureConfig"]["EnableCapture"] is True
    assert aws.notifications() == []


def test_a_first_deployment_that_fails_its_smoke_test_is_removed_and_says_why(aws):
    aws.add_version("1", deploy="production")
    aws.world.answers["1"] = lambda request: json.dumps({"predictions": [0]})  # 1 for 2 rows

    execution = aws.deploy("1")

    assert execution.status == "FAILED"
    assert {"SmokeTestNewEndpoint", "DeleteNewEndpoint",
            "RecordFailure", "NotifyFailure"} <= set(execution.states)
    assert aws.endpoint() is None  # it served nothing before; nothing is lost
    tags = aws.tags("1")
    assert tags[names.TAG_STATUS] == "failed"
    assert "1 predictions for 2 rows" in tags[names.TAG_MESSAGE]
    assert "keeps serving" not in tags[names.TAG_MESSAGE]
    [notice] = aws.notifications()
    assert "1 predictions for 2 rows" in notice["message"]


def test_a_new_version_is_smoke_tested_on_a_candidate_before_the_live_endpoint_serves_it(aws):
    deployed(aws, "1")
    old_config = aws.endpoint()["EndpointConfigName"]
    aws.add_version("2", deploy="production")
    aws.registry.delete_tag(PROJECT, "1", names.TAG_DEPLOY)  # what a person moving the tag does
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    client_answers = []

    def version_2(request: dict[str, Any]) -> str:
        # Meanwhile a client calls the live endpoint, as real traffic does.
        client_answers.append(json.load(runtime.invoke_endpoint(
            EndpointName=ENDPOINT, ContentType="application/json", Body=json.dumps(SMOKE))[
            "Body"]))
        return json.dumps({"predictions": ["v2"] * len(request["dataframe_split"]["data"])})

    aws.world.answers["1"] = lambda request: json.dumps({"predictions": ["v1", "v1"]})
    aws.world.answers["2"] = version_2
    aws.world.invocations.clear()

    execution = aws.deploy("2", replaces="1")

    assert execution.status == "SUCCEEDED", execution.error
    # The test slice reached version 2 on its candidate while the live endpoint served 1,
    # InService on its old config: the client calling it then was answered by version 1.
    smoke, client = aws.world.invocations
    assert smoke.endpoint.startswith(names.candidate_endpoint_prefix(ENDPOINT))
    assert smoke.version == "2"
    assert smoke.endpoints[ENDPOINT] == Serving("InService", old_config, "1")
    assert (client.endpoint, client.version) == (ENDPOINT, "1")
    assert client_answers == [{"predictions": ["v1", "v1"]}]
    # Only then was the live endpoint updated, once, blue/green with auto-rollback.
    states = execution.states
    assert (states.index("SmokeTestCandidate") < states.index("DeleteCandidate")
            < states.index("UpdateEndpoint"))
    [update] = aws.harness.calls.of("update_endpoint")
    assert aws.world.updates == [(ENDPOINT, update["EndpointConfigName"])]
    policy = update["DeploymentConfig"]
    assert policy["BlueGreenUpdatePolicy"]["TrafficRoutingConfiguration"]["Type"] == "ALL_AT_ONCE"
    assert policy["AutoRollbackConfiguration"]["Alarms"] == [
        {"AlarmName": a} for a in names.alarm_names(ENDPOINT)]
    assert aws.serving_version() == "2"
    assert aws.candidates() == []
    # The final config: one variant of the new model, data capture on; the candidate's was
    # one instance without capture.
    final = aws.sagemaker.describe_endpoint_config(
        EndpointConfigName=update["EndpointConfigName"])
    [variant] = final["ProductionVariants"]
    assert variant["VariantName"] == names.SM_VARIANT
    assert final["DataCaptureConfig"]["EnableCapture"] is True
    candidate_config = aws.harness.calls.of("create_endpoint_config")[-1]
    assert candidate_config["EndpointConfigName"].endswith("-candidate")
    assert candidate_config["ProductionVariants"] == [{
        "VariantName": names.SM_VARIANT, "ModelName": variant["ModelName"],
        "InstanceType": variant["InstanceType"], "InitialInstanceCount": 1}]
    assert "DataCaptureConfig" not in candidate_config
    # Autoscaling and the alarms watch the variant the endpoint now serves.
    [target] = aws.autoscaling.describe_scalable_targets(
        ServiceNamespace="sagemaker")["ScalableTargets"]
    assert target["ResourceId"] == f"endpoint/{ENDPOINT}/variant/{variant['VariantName']}"
    for alarm in aws.cloudwatch.describe_alarms()["MetricAlarms"]:
        assert {"Name": "VariantName", "Value": variant["VariantName"]} in alarm["Dimensions"]
    assert aws.tags("2")[names.TAG_STATUS] == "in_service"
    assert aws.tags("1")[names.TAG_STATUS] == "superseded"
    assert "superseded by version 2" in aws.tags("1")[names.TAG_MESSAGE]


def test_a_wrong_smoke_answer_leaves_the_live_endpoint_untouched_and_says_why(aws):
    deployed(aws, "1")
    old_config = aws.endpoint()["EndpointConfigName"]
    aws.add_version("2", deploy="production")
    aws.world.answers["2"] = lambda request: json.dumps({"predictions": [0]})  # 1 for 2 rows
    aws.world.invocations.clear()

    execution = aws.deploy("2", replaces="1")

    assert execution.status == "FAILED"
    assert execution.error[0] == "DeploymentFailed"
    assert {"SmokeTestCandidate", "DeleteFailedCandidate",
            "RecordFailure", "NotifyFailure"} <= set(execution.states)
    # The live endpoint was never asked to change: version 1 served all along.
    assert "UpdateEndpoint" not in execution.states and aws.world.updates == []
    [smoke] = aws.world.invocations
    assert smoke.version == "2" and smoke.endpoint != ENDPOINT
    assert smoke.endpoints[ENDPOINT] == Serving("InService", old_config, "1")
    # When the failure was recorded, version 1 served and the candidate was gone.
    record = aws.harness.runtime.called(".finish")[-1]
    assert record.endpoints == {ENDPOINT: Serving("InService", old_config, "1")}
    tags = aws.tags("2")
    assert tags[names.TAG_STATUS] == "failed"
    assert "1 predictions for 2 rows" in tags[names.TAG_MESSAGE]
    assert "version 1 keeps serving" in tags[names.TAG_MESSAGE]
    assert names.TAG_DEPLOY not in tags
    assert aws.tags("1")[names.TAG_STATUS] == "in_service"
    [notice] = aws.notifications()
    assert notice["subject"] == "Deployment to test-project-production failed"
    assert "1 predictions for 2 rows" in notice["message"]
    assert "Version 1 keeps serving." in notice["message"]


def test_a_candidate_that_fails_to_start_is_removed_and_the_live_endpoint_untouched(aws):
    deployed(aws, "1")
    old_config = aws.endpoint()["EndpointConfigName"]
    aws.add_version("2", deploy="production")
    aws.world.endpoint_fails = "CannotStartContainerError: the container did not pass /ping"

    execution = aws.deploy("2", replaces="1")

    assert execution.status == "FAILED"
    assert {"CandidateFailed", "CandidateFailureReason", "DeleteFailedCandidate",
            "RecordFailure", "NotifyFailure"} <= set(execution.states)
    assert "SmokeTestCandidate" not in execution.states and aws.world.updates == []
    assert aws.candidates() == []
    assert aws.world.endpoints()[ENDPOINT] == Serving("InService", old_config, "1")
    message = aws.tags("2")[names.TAG_MESSAGE]
    assert "is Failed: CannotStartContainerError: the container did not pass /ping" in message
    assert "version 1 keeps serving" in message
    [notice] = aws.notifications()
    assert "CannotStartContainerError" in notice["message"]


def test_a_failure_after_the_switch_puts_the_old_version_back_before_it_is_recorded(aws):
    deployed(aws, "1")
    old_config = aws.endpoint()["EndpointConfigName"]
    aws.add_version("2", deploy="production")
    aws.world.scaling_fails = "scalable target refused (test)"

    execution = aws.deploy("2", replaces="1")

    assert execution.status == "FAILED"
    states = execution.states
    assert {"RegisterScalableTarget", "RevertEndpoint", "Reverted?", "RecordFailure",
            "NotifyFailure"} <= set(states)
    # The revert reported Updating first: the machine waited and looked again.
    assert states.count("WaitForRevert") == 2
    [(_, new_config), back] = aws.world.updates
    assert back == (ENDPOINT, old_config) and new_config != old_config
    # Recorded only once version 1 served again.
    record = aws.harness.runtime.called(".finish")[-1]
    assert record.endpoints[ENDPOINT] == Serving("InService", old_config, "1")
    message = aws.tags("2")[names.TAG_MESSAGE]
    assert "scalable target refused (test)" in message
    assert "version 1 keeps serving" in message
    assert aws.tags("1")[names.TAG_STATUS] == "in_service"
    assert len(aws.notifications()) == 1


def test_when_the_old_version_cannot_be_put_back_the_failure_does_not_claim_it_serves(aws):
    deployed(aws, "1")
    old_config = aws.endpoint()["EndpointConfigName"]
    aws.add_version("2", deploy="production")
    aws.world.scaling_fails = "scalable target refused (test)"
    aws.world.refused_configs.add(old_config)

    execution = aws.deploy("2", replaces="1")

    assert execution.status == "FAILED"
    assert {"RevertEndpoint", "RecordUnrevertedFailure", "NotifyFailure"} <= set(
        execution.states)
    message = aws.tags("2")[names.TAG_MESSAGE]
    assert "putting the previous config back failed too" in message
    assert "keeps serving" not in message
    [notice] = aws.notifications()
    assert "keeps serving" not in notice["message"]
    assert "check test-project-production in SageMaker" in notice["message"]


def test_a_version_without_a_test_slice_goes_straight_to_the_blue_green_update(aws):
    deployed(aws, "1")
    aws.add_version("2", deploy="production")
    del aws.registry.smoke["run-2"]

    execution = aws.deploy("2", replaces="1")

    assert execution.status == "SUCCEEDED", execution.error
    assert "CreateCandidateEndpoint" not in execution.states
    assert aws.serving_version() == "2"


def test_a_candidate_left_behind_by_a_stopped_deployment_is_deleted_by_the_next_one(aws):
    deployed(aws, "1")
    stale = names.candidate_endpoint_name(ENDPOINT, "deadbeef")
    aws.sagemaker.create_endpoint(EndpointName=stale,
                                  EndpointConfigName=aws.endpoint()["EndpointConfigName"])
    aws.add_version("2", deploy="production")

    execution = aws.deploy("2", replaces="1")

    assert execution.status == "SUCCEEDED", execution.error
    assert aws.candidates() == []
    assert aws.serving_version() == "2"


def test_a_blue_green_update_rolled_back_by_an_alarm_leaves_the_old_version_serving(aws):
    deployed(aws, "1")
    aws.add_version("2", deploy="production")
    aws.world.update_rolls_back = True

    execution = aws.deploy("2", replaces="1")

    assert execution.status == "FAILED"
    assert "RolledBackByAlarm" in execution.states
    assert aws.serving_version() == "1"
    assert "went back to the previous version" in aws.tags("2")[names.TAG_MESSAGE]
    assert aws.tags("1")[names.TAG_STATUS] == "in_service"
    assert len(aws.notifications()) == 1


def test_an_endpoint_that_fails_to_start_is_removed_and_the_failure_recorded(aws):
    aws.add_version("1", deploy="production")
    aws.world.endpoint_fails = "CannotStartContainerError: the container did not pass /ping"

    execution = aws.deploy("1")

    assert execution.status == "FAILED"
    assert {"EndpointFailed", "EndpointFailureReason", "DeleteNewEndpoint", "RecordFailure",
            "NotifyFailure"} <= set(execution.states)
    assert aws.endpoint() is None
    tags = aws.tags("1")
    assert tags[names.TAG_STATUS] == "failed"
    # The reason was read before the endpoint was deleted, as it goes with it.
    assert ("endpoint test-project-production is Failed: CannotStartContainerError"
            in tags[names.TAG_MESSAGE])
    [notice] = aws.notifications()
    assert "endpoint test-project-production is Failed" in notice["message"]


def test_a_deprecated_version_is_refused_before_anything_is_created(aws):
    aws.add_version("1", deploy="production", deprecated="true")

    execution = aws.deploy("1")

    assert execution.status == "FAILED"
    assert execution.states[:4] == ["AcquireLock", "EndpointFree?", "Resolve", "RecordFailure"]
    assert aws.harness.calls.of("create_model") == []
    assert "deprecated and may not serve" in aws.tags("1")[names.TAG_MESSAGE]
    assert len(aws.notifications()) == 1


def test_when_mlflow_is_down_the_failure_is_still_notified_though_not_recorded(aws):
    aws.add_version("1", deploy="production")
    aws.mlflow.down = True

    execution = aws.deploy("1")

    assert execution.status == "FAILED"
    assert "NotifyUnrecordedFailure" in execution.states
    [notice] = aws.notifications()
    assert notice["subject"] == "Deployment failed and could not be recorded in MLflow"
    # The raw state: which version, and MLflow's own answer.
    assert '"version": "1"' in notice["message"]
    assert "MLflow refused GET /api/2.0/mlflow/model-versions/get" in notice["message"]


# --- retire ---------------------------------------------------------------------------------
def test_retire_removes_endpoint_alarms_dashboards_scaling_configs_and_models(aws):
    deployed(aws, "1")
    aws.registry.delete_tag(PROJECT, "1", names.TAG_DEPLOY)

    execution = aws.retire("1", reason="no version is tagged deploy=production; endpoint removed")

    assert execution.status == "SUCCEEDED", execution.error
    assert aws.endpoint() is None
    assert aws.alarms() == set() and aws.dashboards() == set()
    assert aws.sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert aws.sagemaker.list_models()["Models"] == []
    assert aws.autoscaling.describe_scalable_targets(
        ServiceNamespace="sagemaker")["ScalableTargets"] == []
    tags = aws.tags("1")
    assert tags[names.TAG_STATUS] == "retired"
    assert tags[names.TAG_MESSAGE] == "no version is tagged deploy=production; endpoint removed"
    assert aws.notifications() == []


def test_retiring_one_stage_keeps_the_dashboards_while_another_stage_serves(aws):
    deployed(aws, "1")
    staging = names.endpoint_name(PROJECT, "staging")  # staging serves the same config
    aws.sagemaker.create_endpoint(EndpointName=staging,
                                  EndpointConfigName=aws.endpoint()["EndpointConfigName"])
    boards = {names.metrics_dashboard(PROJECT), names.stats_dashboard(PROJECT)}
    assert aws.dashboards() == boards
    aws.registry.delete_tag(PROJECT, "1", names.TAG_DEPLOY)

    execution = aws.retire("1")

    assert execution.status == "SUCCEEDED", execution.error
    assert aws.endpoint() is None
    assert "DeleteDashboards" not in execution.states
    assert aws.dashboards() == boards  # staging's requests are still on them
    assert aws.alarms() == set()  # production's alarms went with its endpoint
    assert aws.tags("1")[names.TAG_STATUS] == "retired"

    aws.sagemaker.delete_endpoint(EndpointName=staging)
    aws.add_version("2")
    assert aws.retire("2").status == "SUCCEEDED"
    assert aws.dashboards() == set()  # the project's last endpoint: its dashboards go too


def test_retire_after_a_replacement_leaves_no_endpoint_candidate_config_or_model(aws):
    deployed(aws, "1")
    deployed(aws, "2", replaces="1")
    stale = names.candidate_endpoint_name(ENDPOINT, "deadbeef")  # as a stopped deploy leaves
    aws.sagemaker.create_endpoint(EndpointName=stale,
                                  EndpointConfigName=aws.endpoint()["EndpointConfigName"])
    assert len(aws.sagemaker.list_endpoint_configs()["EndpointConfigs"]) == 3  # 1, 2, 2's test

    execution = aws.retire("2")

    assert execution.status == "SUCCEEDED", execution.error
    assert aws.sagemaker.list_endpoints()["Endpoints"] == []
    assert aws.sagemaker.list_endpoint_configs()["EndpointConfigs"] == []
    assert aws.sagemaker.list_models()["Models"] == []
    assert aws.autoscaling.describe_scalable_targets(
        ServiceNamespace="sagemaker")["ScalableTargets"] == []
    assert aws.alarms() == set() and aws.dashboards() == set()
    assert aws.tags("2")[names.TAG_STATUS] == "retired"


def test_retiring_what_is_already_gone_succeeds(aws):
    aws.add_version("1")

    execution = aws.retire("1")

    assert execution.status == "SUCCEEDED", execution.error
    assert {"DeleteEndpointSkipped", "DeregisterScalableTargetSkipped"} <= set(execution.states)
    assert aws.tags("1")[names.TAG_STATUS] == "retired"


def test_a_retire_that_cannot_record_its_outcome_fails_and_notifies(aws):
    deployed(aws, "1")
    aws.mlflow.down = True

    execution = aws.retire("1")

    assert execution.status == "FAILED"
    assert aws.endpoint() is None  # the endpoint went; only the bookkeeping failed
    [notice] = aws.notifications()
    assert notice["subject"] == "Retiring an endpoint failed"


# --- train ----------------------------------------------------------------------------------
def training_request(aws: Aws) -> dict[str, Any]:
    from lambdas import data_trigger
    from mlops_control import events

    bucket = aws.harness.stack.ref(aws.harness.stack.logical_id("StorageData"))
    data = events.DataEvent(event_id="evt-1", project=PROJECT, version="v-1", size=10,
                            location=f"s3://{bucket}/data/{PROJECT}/day-1.csv")
    return data_trigger.training_input(data, "data")


def test_training_runs_the_shared_image_on_the_project_prefix_with_mlflow_credentials(aws):
    request = training_request(aws)

    execution = aws.harness.run(aws.harness.machine("WorkflowsTrain"), request)

    assert execution.status == "SUCCEEDED", execution.error
    assert execution.states.count("WaitForTraining") == 2
    [job] = aws.harness.calls.of("create_training_job")
    assert job["TrainingJobName"] == request["training_job_name"]
    assert job["HyperParameters"]["project"] == PROJECT
    assert job["InputDataConfig"][0]["DataSource"]["S3DataSource"]["S3Uri"] == (
        request["data_location"])
    stack = aws.harness.stack
    assert job["Environment"][names.ENV_MLFLOW_AUTH_SECRET_ARN] == stack.ref(
        stack.logical_id("MlflowAdmin"))
    # One shared image: the one the deploy glue gives every SageMaker model.
    glue_env = stack.resources[stack.logical_id("deployresolveFunction")]["Properties"][
        "Environment"]["Variables"]
    assert job["AlgorithmSpecification"]["TrainingImage"] == stack.resolve(
        glue_env["MLOPS_IMAGE_URI"])
    # With the MLflow stack the job runs in the app subnets as one of MLflow's clients, so
    # it leaves through the NAT address MLflow's ALB admits (network.py).
    clients = stack.ref(next(lid for lid, r in stack.resources.items()
                             if r["Type"] == "AWS::EC2::SecurityGroup"
                             and "clients of MLflow" in r["Properties"]["GroupDescription"]))
    app_subnets = {stack.ref(lid) for lid, r in stack.resources.items()
                   if r["Type"] == "AWS::EC2::Subnet" and "appSubnet" in lid}
    assert job["VpcConfig"]["SecurityGroupIds"] == [clients]
    assert set(job["VpcConfig"]["Subnets"]) == app_subnets and len(app_subnets) == 2
    described = aws.sagemaker.describe_training_job(TrainingJobName=job["TrainingJobName"])
    assert described["TrainingJobStatus"] == "Completed"
    assert aws.notifications() == []


def test_a_failed_training_job_notifies_with_its_failure_reason(aws):
    aws.world.training_fails = "AlgorithmError: get_data() returned 3 values, expected (X, y)"

    execution = aws.harness.run(aws.harness.machine("WorkflowsTrain"), training_request(aws))

    assert execution.status == "FAILED"
    assert execution.error[0] == "TrainingFailed"
    [notice] = aws.notifications()
    assert notice["subject"] == "Training failed"
    assert "get_data() returned 3 values" in notice["message"]


# --- from the event to the endpoint -----------------------------------------------------------
def invoke(aws: Aws, readable: str, event: dict[str, Any]) -> Any:
    """Invoke one of the template's functions as Lambda would, returning its answer."""
    stack = aws.harness.stack
    arn = stack.attr(stack.logical_id(readable), "Arn")
    response = aws.harness.runtime.invoke(FunctionName=arn, Payload=json.dumps(event).encode())
    assert "FunctionError" not in response
    return json.load(response["Payload"])


def finished_deploys(aws: Aws) -> list:
    machine = aws.harness.machine("WorkflowsDeploy")
    return [aws.harness.wait(e["executionArn"]) for e in
            aws.harness.sfn.list_executions(stateMachineArn=machine)["executions"]]


def test_a_signed_deploy_tag_delivered_to_the_webhook_ends_with_the_version_in_service(aws):
    import time

    from mlops_control import events
    from tests import events as recorded

    aws.add_version("1", deploy="production")
    stack = aws.harness.stack
    webhook_secret = stack.logical_id("EventIntakeWebhookSecret")
    stack.ref(webhook_secret)  # made in Secrets Manager as the template generates it
    secret = stack.secret_values[webhook_secret]
    body = json.dumps({"entity": "model_version_tag", "action": "set",
                       "timestamp": "2026-11-26T12:00:00+00:00",
                       "data": {"name": PROJECT, "version": "1", "key": "deploy",
                                "value": "production"}})
    stamp, delivery = str(int(time.time())), "7f8a2c1e-0000-4000-8000-00000000e2e1"
    event = recorded.load("function_url_webhook")
    event["headers"].update({
        "x-mlflow-delivery-id": delivery, "x-mlflow-timestamp": stamp,
        "x-mlflow-signature": events.sign_webhook(secret, delivery, stamp, body.encode())})
    event["body"] = body

    answer = invoke(aws, "webhookFunction", event)

    assert answer["statusCode"] == 200, answer
    assert json.loads(answer["body"])["actions"] == [
        {"action": "deploy", "stage": "production", "version": "1", "result": "started"}]
    [execution] = finished_deploys(aws)
    assert execution.status == "SUCCEEDED", execution.error
    assert aws.serving_version() == "1"
    assert aws.tags("1")[names.TAG_STATUS] == "in_service"


def test_when_the_webhook_was_lost_the_scheduled_reconciler_deploys_the_tagged_version(aws):
    from tests import events as recorded

    aws.add_version("1", deploy="production")

    report = invoke(aws, "reconcilerFunction", recorded.load("eventbridge_schedule"))

    assert report == {PROJECT: [{"action": "deploy", "stage": "production", "version": "1",
                                 "result": "started"}]}
    [execution] = finished_deploys(aws)
    assert execution.status == "SUCCEEDED", execution.error
    assert aws.serving_version() == "1"
    # Converged: the next tick finds nothing to do.
    assert invoke(aws, "reconcilerFunction", recorded.load("eventbridge_schedule")) == {
        PROJECT: []}
