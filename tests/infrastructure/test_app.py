"""The synthesized CDK app: what a deployed account would contain."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from aws_cdk.assertions import Match

from mlops_control import names

pytestmark = pytest.mark.infrastructure


def resources(template: dict, kind: str) -> dict:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def test_both_stacks_synthesize_with_cdk_nag_on(synth):
    # The session fixture synthesized with AwsSolutionsChecks: an unacknowledged finding
    # would have raised there.
    assert set(synth.templates) == {names.STACK_CONTROL, names.STACK_MLFLOW}


def test_cdk_nag_fails_synth_on_an_unacknowledged_finding(tmp_path, synth):
    """The check above can fail: an unencrypted, unlogged bucket stops a synth."""
    from aws_cdk import App, Stack, Validations
    from aws_cdk import aws_s3 as s3
    from cdk_nag import AwsSolutionsChecks

    app = App(outdir=str(tmp_path))
    s3.Bucket(Stack(app, "Bare"), "Careless")
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    with pytest.raises(Exception, match="AwsSolutions-S1"):
        app.synth()


def test_cfn_lint_finds_no_errors_in_either_template(synth):
    result = subprocess.run(
        [sys.executable, "-m", "cfnlint", "--format", "parseable", "--ignore-checks", "W3005",
         *map(str, synth.outdir.glob("*.template.json"))], capture_output=True, text=True)
    findings = [line for line in result.stdout.splitlines() if line.strip()]
    assert [f for f in findings if ":E" in f] == []
    assert findings == [], "warnings other than CDK's redundant DependsOn (W3005)"


def test_buckets_are_encrypted_ssl_only_private_versioned_and_logged(synth):
    buckets = resources(synth.templates[names.STACK_CONTROL], "AWS::S3::Bucket")
    assert len(buckets) == 3
    for bucket in buckets.values():
        props = bucket["Properties"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True}
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert props.get("LifecycleConfiguration", {}).get("Rules")
    data_and_artifacts = [b for b in buckets.values() if "LoggingConfiguration" in b["Properties"]]
    assert len(data_and_artifacts) == 2
    for bucket in data_and_artifacts:
        assert bucket["Properties"]["VersioningConfiguration"] == {"Status": "Enabled"}
    policies = resources(synth.templates[names.STACK_CONTROL], "AWS::S3::BucketPolicy")
    assert all("aws:SecureTransport" in json.dumps(p) for p in policies.values())


def test_the_data_bucket_sends_events_and_each_project_has_a_rule_on_its_prefix(synth):
    synth.control.has_resource_properties("Custom::S3BucketNotifications", {
        "NotificationConfiguration": {"EventBridgeConfiguration": {}}})
    synth.control.has_resource_properties("AWS::Events::Rule", {"EventPattern": {
        "source": ["aws.s3"], "detail-type": ["Object Created"],
        "detail": {"object": {"key": [{"prefix": "data/test-project/"}]},
                   "bucket": Match.any_value()}}})


def test_the_webhook_is_a_function_url_without_iam_auth(synth):
    synth.control.has_resource_properties("AWS::Lambda::Url", {"AuthType": "NONE"})
    synth.control.has_resource_properties("AWS::Lambda::Function", {
        "Handler": "lambdas.webhook.handler",
        "Runtime": "python3.12", "TracingConfig": {"Mode": "Active"},
        "Environment": {"Variables": Match.object_like({
            names.ENV_TRACKING_URI: "https://mlflow.example.com",
            names.ENV_WEBHOOK_SECRET_ARN: Match.any_value()})}})
    synth.control.resource_count_is("AWS::SecretsManager::Secret", 2)


def test_asynchronously_invoked_functions_have_dead_letter_queues(synth):
    synth.control.has_resource_properties("AWS::Lambda::Function", {
        "Handler": "lambdas.data_trigger.handler",
        "DeadLetterConfig": {"TargetArn": Match.any_value()}})
    synth.control.has_resource_properties("AWS::Events::Rule", {
        "ScheduleExpression": "rate(5 minutes)"})


def test_no_function_reserves_concurrency_by_default(synth):
    """A new account's quota can be 10 concurrent executions, all of which Lambda keeps
    unreserved: any reservation would fail the first deploy."""
    functions = resources(synth.templates[names.STACK_CONTROL], "AWS::Lambda::Function")
    reserving = {lid: f["Properties"]["ReservedConcurrentExecutions"]
                 for lid, f in functions.items()
                 if "ReservedConcurrentExecutions" in f["Properties"]}
    assert len(functions) > 5 and reserving == {}


def test_reconciler_runs_one_at_a_time_without_reserving_concurrency(synth):
    """What the reserved concurrency of 1 did: the schedule's ticks go through a FIFO queue
    with one message group, whose messages Lambda hands to one invocation at a time."""
    template = synth.templates[names.STACK_CONTROL]
    [rule] = [r for r in resources(template, "AWS::Events::Rule").values()
              if r["Properties"].get("ScheduleExpression") == "rate(5 minutes)"]
    [target] = rule["Properties"]["Targets"]
    assert target["SqsParameters"] == {"MessageGroupId": "reconcile"}
    queue_id = target["Arn"]["Fn::GetAtt"][0]
    queue = template["Resources"][queue_id]["Properties"]
    assert queue["FifoQueue"] is True and queue["ContentBasedDeduplication"] is True
    assert queue["VisibilityTimeout"] >= 300  # outlasts a run (the function's timeout)
    # A backlog cannot grow: a tick expires after an interval or a run, whichever is longer.
    assert queue["VisibilityTimeout"] < queue["MessageRetentionPeriod"] <= 600
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 1  # the next tick is the retry
    [mapping] = [m["Properties"] for m in resources(
        template, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["EventSourceArn"] == {"Fn::GetAtt": [queue_id, "Arn"]}]
    assert mapping["BatchSize"] == 1
    reconciler = template["Resources"][mapping["FunctionName"]["Ref"]]["Properties"]
    assert reconciler["Handler"] == "lambdas.reconciler.handler"
    assert reconciler["Timeout"] <= queue["VisibilityTimeout"]
    assert "ReservedConcurrentExecutions" not in reconciler


def test_state_machines_use_aws_sdk_integrations_and_never_sync(synth):
    machines = resources(synth.templates[names.STACK_CONTROL], "AWS::StepFunctions::StateMachine")
    assert len(machines) == 3
    text = json.dumps(machines)
    assert ".sync" not in text
    for action in ("sagemaker:createModel", "sagemaker:createEndpointConfig",
                   "sagemaker:updateEndpoint", "sagemaker:createEndpoint",
                   "applicationautoscaling:putScalingPolicy",
                   "sagemaker:createTrainingJob",
                   "sagemaker:describeTrainingJob", "sagemaker:deleteEndpoint"):
        assert f"aws-sdk:{action}" in text, action
    # The smoke test and the dashboards are glue steps now (only references travel in the
    # state): their functions hold the calls the machine used to make itself.
    policies = json.dumps(resources(synth.templates[names.STACK_CONTROL], "AWS::IAM::Policy"))
    for action in ("sagemaker:InvokeEndpoint", "cloudwatch:PutDashboard"):
        assert f'"{action}"' in policies, action
    for machine in machines.values():
        assert machine["Properties"]["TracingConfiguration"] == {"Enabled": True}
        assert machine["Properties"]["LoggingConfiguration"]["Level"] == "ALL"


def test_state_machine_sagemaker_permissions_are_scoped_to_project_prefixes(synth):
    policies = resources(synth.templates[names.STACK_CONTROL], "AWS::IAM::Policy")
    for policy in policies.values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) \
                else [statement["Action"]]
            if any(a.startswith("sagemaker:") and not a.startswith("sagemaker:List")
                   for a in actions):
                assert statement["Resource"] != "*", statement


def test_the_glue_that_deletes_stale_candidates_may_delete_only_the_projects_endpoints(synth):
    template = synth.templates[names.STACK_CONTROL]
    policies = resources(template, "AWS::IAM::Policy")
    for function in ("deployresolve", "retirefinish"):
        role = next(lid for lid in resources(template, "AWS::IAM::Role")
                    if lid.startswith(f"{function}FunctionServiceRole"))
        statements = [st for policy in policies.values()
                      if {"Ref": role} in policy["Properties"]["Roles"]
                      for st in policy["Properties"]["PolicyDocument"]["Statement"]]
        deletes = _allowing(statements, "sagemaker:DeleteEndpoint")
        assert deletes and all(":endpoint/test-project-*" in json.dumps(st["Resource"])
                               for st in deletes), function
        assert _allowing(statements, "sagemaker:ListEndpoints"), function


def test_machines_that_create_tagged_sagemaker_resources_may_tag_only_those(synth):
    template = synth.templates[names.STACK_CONTROL]
    policies = resources(template, "AWS::IAM::Policy")
    for machine, kinds in (("Deploy", ("endpoint", "endpoint-config", "model")),
                           ("Train", ("training-job",))):
        role = next(lid for lid in resources(template, "AWS::IAM::Role")
                    if lid.startswith(f"workflows{machine}") or f"{machine}Role" in lid)
        statements = [st for policy in policies.values()
                      if {"Ref": role} in policy["Properties"]["Roles"]
                      for st in policy["Properties"]["PolicyDocument"]["Statement"]]
        tagging = json.dumps([st["Resource"] for st in _allowing(statements, "sagemaker:AddTags")])
        for kind in kinds:
            assert f":{kind}/test-project-*" in tagging, (machine, kind)
        assert '"*"' not in tagging


def _allowing(statements: list[dict], action: str) -> list[dict]:
    return [st for st in statements if action in (
        st["Action"] if isinstance(st["Action"], list) else [st["Action"]])]


def test_the_mlflow_stack_serves_https_with_a_postgres_backend_and_stable_webhook_key(synth):
    synth.mlflow.has_resource_properties("AWS::ElasticLoadBalancingV2::Listener", {
        "Protocol": "HTTPS", "Port": 443})
    synth.mlflow.has_resource_properties("AWS::RDS::DBInstance", {
        "Engine": "postgres", "StorageEncrypted": True, "DeletionProtection": True})
    task = json.dumps(resources(synth.templates[names.STACK_MLFLOW],
                                "AWS::ECS::TaskDefinition"))
    for secret in ("ADMIN_PASSWORD", "WEBHOOK_KEY_SOURCE", "WEBHOOK_SECRET", "DB_PASSWORD"):
        assert f'"Name": "{secret}"' in task
    assert "WEBHOOK_URL" in task


def test_the_mlflow_task_is_told_the_names_its_clients_use(synth):
    """MLflow refuses any Host that is not localhost or a private address unless
    --allowed-hosts lists it; the entrypoint builds that list from MLFLOW_PUBLIC_HOSTS
    (tests/integration/test_mlflow_image.py runs it)."""
    template = synth.templates[names.STACK_MLFLOW]
    [task] = resources(template, "AWS::ECS::TaskDefinition").values()
    [container] = task["Properties"]["ContainerDefinitions"]
    [hosts] = [e["Value"] for e in container["Environment"] if e["Name"] == "MLFLOW_PUBLIC_HOSTS"]
    [alb] = resources(template, "AWS::ElasticLoadBalancingV2::LoadBalancer")
    assert hosts == {"Fn::Join": ["", ["mlflow.example.com,",
                                       {"Fn::GetAtt": [alb, "DNSName"]}]]}
