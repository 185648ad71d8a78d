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
        try:
            return self.sagemaker.describe_endpoint(EndpointName=ENDPOINT)
        except self.sagemaker.exceptions.ClientError:
            return None

    def serving_version(self) -> str | None:
        """The model version the endpoint's current config serves, from its tags."""
        described = self.endpoint()
        if described is None:
            return None
        arn = self.sagemaker.describe_endpoint_config(
            EndpointConfigName=described["EndpointConfigName"])["EndpointConfigArn"]
        tags = {t["Key"]: t["Value"] for t in self.sagemaker.list_tags(ResourceArn=arn)["Tags"]}
        return tags[names.SM_TAG_VERSION]

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


# --- deploy ---------------------------------------------------------------------------------
def test_a_first_deployment_ends_in_service_with_tags_alarms_scaling_and_dashboards(aws):
    aws.add_version("1", deploy="production")
    execution = aws.deploy("1")

    assert execution.status == "SUCCEEDED", execution.error
    assert aws.endpoint()["EndpointStatus"] == "InService"
    assert aws.serving_version() == "1"
    tags = aws.tags("1")
    assert tags[names.TAG_STATUS] == "in_service"
    assert tags[names.TAG_ENDPOINT] == ENDPOINT
    assert "serving at test-project-production" in tags[names.TAG_MESSAGE]
    assert aws.dashboards() == {"test-project_metrics", "test-project_stats"}
    assert aws.alarms() == set(names.alarm_names(ENDPOINT))
    [target] = aws.autoscaling.describe_scalable_targets(
        ServiceNamespace="sagemaker")["ScalableTargets"]
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4)  # production in cdk.json
    assert aws.notifications() == []
