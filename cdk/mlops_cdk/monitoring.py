"""Input and output statistics from captured data: the capture-stats Lambda on every new
capture file (EventBridge rule on the artifact bucket's capture prefix), allowed to publish
to the statistics namespace only, and a drift alarm per endpoint (every project's every
stage) that tells the notification topic when a feature's distribution has shifted."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cw_actions
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from mlops_cdk import nag
from mlops_cdk.lambda_factory import FunctionSpec, LambdaFactory
from mlops_control import names
from mlops_control.monitoring import stats

CAPTURE_STATS = FunctionSpec("capture-stats", "lambdas.capture_stats.handler",
                             "Data capture: input/output statistics and drift to CloudWatch",
                             memory_mb=512, timeout_s=120)
DRIFT_PERIOD = Duration.minutes(15)
DRIFT_EVALUATION_PERIODS = 3
DRIFT_DATAPOINTS_TO_ALARM = 2
"""Two of three quarter-hours above the threshold: a shift that lasts, not one odd file."""


class Monitoring(Construct):
    """Attributes: ``capture_stats`` (function), ``rule``, ``drift_alarms`` (by endpoint)."""

    def __init__(self, scope: Construct, construct_id: str, *, factory: LambdaFactory,
                 registry_environment: dict[str, str], projects: Sequence[str],
                 stages: Sequence[str], artifact_bucket: s3.Bucket, capture_prefix: str,
                 topic: sns.ITopic, key: kms.IKey | None,
                 mlflow_auth: secretsmanager.ISecret | None = None,
                 drift_threshold: float = stats.PSI_MAJOR) -> None:
        super().__init__(scope, construct_id)
        prefix = capture_prefix.strip("/")
        self.capture_stats = factory.function(
            CAPTURE_STATS, asynchronous=True,
            environment={**registry_environment, names.ENV_PROJECTS: ",".join(projects),
                         names.ENV_CAPTURE_PREFIX: prefix})
        artifact_bucket.grant_read(self.capture_stats, f"{prefix}/*")
        self.capture_stats.add_to_role_policy(iam.PolicyStatement(
            actions=["cloudwatch:PutMetricData"], resources=["*"],
            conditions={"StringEquals": {"cloudwatch:namespace": names.STATS_NAMESPACE}}))
        if mlflow_auth is not None:
            mlflow_auth.grant_read(self.capture_stats)
        nag.wildcard(self.capture_stats, f"{nag.attr(artifact_bucket)}/{prefix}/*",
                     "capture files land under one prefix per endpoint, variant and hour")
        nag.actions(self.capture_stats, ["s3:GetBucket*", "s3:GetObject*", "s3:List*"],
                    "grant_read on the capture prefix only")

        artifact_bucket.enable_event_bridge_notification()
        dlq = sqs.Queue(self, "RuleDeadLetters", enforce_ssl=True,
                        encryption=sqs.QueueEncryption.KMS if key
                        else sqs.QueueEncryption.SQS_MANAGED,
                        encryption_master_key=key, retention_period=Duration.days(14))
        nag.ack(dlq, "AwsSolutions-SQS3", "this queue is the capture rule's dead-letter queue")
        self.rule = events.Rule(
            self, "CaptureCreated", description="New data-capture file: publish its statistics",
            event_pattern=events.EventPattern(
                source=["aws.s3"], detail_type=["Object Created"],
                detail={"bucket": {"name": [artifact_bucket.bucket_name]},
                        "object": {"key": [{"prefix": f"{prefix}/"}]}}),
            targets=[targets.LambdaFunction(self.capture_stats, dead_letter_queue=dlq,
                                            retry_attempts=4, max_event_age=Duration.hours(6))])

        self.drift_alarms: dict[str, cloudwatch.Alarm] = {}
        for project in projects:
            for stage in stages:
                endpoint = names.endpoint_name(project, stage)
                alarm = cloudwatch.Alarm(
                    self, f"Drift-{endpoint}", alarm_name=names.drift_alarm_name(endpoint),
                    alarm_description=(
                        f"Input drift at {endpoint}: a feature's population stability index "
                        f"against the training data stays above {drift_threshold} (see "
                        f"the {names.stats_dashboard(project)} dashboard)"),
                    metric=cloudwatch.Metric(
                        namespace=names.STATS_NAMESPACE, metric_name=names.STAT_MAX_DRIFT,
                        dimensions_map={"Project": project, "Endpoint": endpoint},
                        statistic="Maximum", period=DRIFT_PERIOD),
                    threshold=drift_threshold,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                    evaluation_periods=DRIFT_EVALUATION_PERIODS,
                    datapoints_to_alarm=DRIFT_DATAPOINTS_TO_ALARM,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING)
                alarm.add_alarm_action(cw_actions.SnsAction(topic))
                self.drift_alarms[endpoint] = alarm
