"""Monitoring in the synthesized app: capture files reach the capture-stats Lambda, which may
publish to the statistics namespace and nothing else, and every endpoint has a drift alarm
on a metric the Lambda publishes. The construct also synthesizes alone in a bare stack."""

from __future__ import annotations

import json

import pytest
from aws_cdk.assertions import Match

from mlops_control import names
from mlops_control.monitoring import catalogue, stats

pytestmark = pytest.mark.infrastructure

HANDLER = "lambdas.capture_stats.handler"


def _resources(template: dict, kind: str) -> dict:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def _function_id(template: dict) -> str:
    (found,) = [k for k, v in _resources(template, "AWS::Lambda::Function").items()
                if v["Properties"]["Handler"] == HANDLER]
    return found


def test_a_new_capture_file_triggers_the_capture_stats_lambda(synth):
    template = synth.templates[names.STACK_CONTROL]
    function = _function_id(template)
    synth.control.has_resource_properties("AWS::Events::Rule", {
        "EventPattern": {"source": ["aws.s3"], "detail-type": ["Object Created"],
                         "detail": {"object": {"key": [{"prefix": "capture/"}]},
                                    "bucket": {"name": [{"Ref": Match.string_like_regexp(
                                        "StorageArtifacts")}]}}},
        "Targets": [Match.object_like({"Arn": {"Fn::GetAtt": [function, "Arn"]},
                                       "DeadLetterConfig": Match.any_value()})]})
    # The artifact bucket sends its events to EventBridge, as the data bucket does.
    notifications = _resources(template, "Custom::S3BucketNotifications")
    assert any("StorageArtifacts" in json.dumps(n["Properties"]["BucketName"])
               and n["Properties"]["NotificationConfiguration"] == {
                   "EventBridgeConfiguration": {}} for n in notifications.values())
    synth.control.has_resource_properties("AWS::Lambda::Function", {
        "Handler": HANDLER, "Environment": {"Variables": Match.object_like({
            names.ENV_CAPTURE_PREFIX: "capture", names.ENV_PROJECTS: "test-project",
            names.ENV_TRACKING_URI: Match.any_value()})},
        "DeadLetterConfig": {"TargetArn": Match.any_value()}})


def test_the_lambda_may_put_metric_data_in_the_stats_namespace_only(synth):
    template = synth.templates[names.STACK_CONTROL]
    function = _function_id(template)
    role = template["Resources"][function]["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = [s for p in _resources(template, "AWS::IAM::Policy").values()
                  if {"Ref": role} in p["Properties"]["Roles"]
                  for s in p["Properties"]["PolicyDocument"]["Statement"]]
    cloudwatch = [s for s in statements if any(
        a.startswith("cloudwatch:") for a in ([s["Action"]] if isinstance(s["Action"], str)
                                              else s["Action"]))]
    assert cloudwatch == [{"Action": "cloudwatch:PutMetricData", "Effect": "Allow",
                           "Resource": "*", "Condition": {"StringEquals": {
                               "cloudwatch:namespace": names.STATS_NAMESPACE}}}]
    reads = [s for s in statements if "s3:GetObject*" in s["Action"]]
    assert reads and all("/capture/*" in json.dumps(s["Resource"]) for s in reads)
    assert not [s for s in statements if "s3:PutObject" in json.dumps(s["Action"])]


def test_every_endpoint_has_a_drift_alarm_on_a_published_metric(synth):
    alarms = {a["Properties"]["AlarmName"]: a["Properties"] for a in _resources(
        synth.templates[names.STACK_CONTROL], "AWS::CloudWatch::Alarm").values()}
    for stage in ("staging", "production"):
        endpoint = names.endpoint_name("test-project", stage)
        alarm = alarms[names.drift_alarm_name(endpoint)]
        metric = catalogue.metric(alarm["Namespace"], alarm["MetricName"])
        assert metric.publisher == catalogue.CAPTURE_STATS
        assert {d["Name"]: d["Value"] for d in alarm["Dimensions"]} == {
            "Project": "test-project", "Endpoint": endpoint}
        assert sorted(d["Name"] for d in alarm["Dimensions"]) == sorted(metric.dimensions)
        assert alarm["Threshold"] == stats.PSI_MAJOR and alarm["Statistic"] == "Maximum"
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"
        (action,) = alarm["AlarmActions"]
        assert action["Ref"].startswith("NotificationsFailures")  # the notification topic


def test_the_construct_synthesizes_alone_in_a_bare_stack(synth):
    from aws_cdk import App, Stack
    from aws_cdk import aws_s3 as s3
    from aws_cdk import aws_sns as sns
    from aws_cdk.assertions import Template
    from mlops_cdk.lambda_factory import LambdaFactory
    from mlops_cdk.monitoring import Monitoring

    stack = Stack(App(), "Bare")
    monitoring = Monitoring(
        stack, "Monitoring", factory=LambdaFactory(stack, log_retention_days=7, key=None),
        registry_environment={names.ENV_TRACKING_URI: "https://mlflow.example.com"},
        projects=["churn", "fraud"], stages=["production"],
        artifact_bucket=s3.Bucket(stack, "Artifacts"), capture_prefix="/capture/",
        topic=sns.Topic(stack, "Topic"), key=None)
    template = Template.from_stack(stack)
    template.resource_count_is("AWS::CloudWatch::Alarm", 2)
    assert set(monitoring.drift_alarms) == {"churn-production", "fraud-production"}
    template.has_resource_properties("AWS::Events::Rule", {"EventPattern": Match.object_like({
        "detail": Match.object_like({"object": {"key": [{"prefix": "capture/"}]}})})})
