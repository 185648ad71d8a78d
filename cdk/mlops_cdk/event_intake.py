"""Where events come in: the MLflow webhook receiver (Function URL, HMAC-verified, secret in
Secrets Manager, reserved concurrency when the settings ask), the S3 data trigger (one
EventBridge rule per project prefix) and the scheduled reconciler, one run at a time."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Acknowledgment, Duration, Stack, Validations
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from mlops_cdk import nag
from mlops_cdk.lambda_factory import FunctionSpec, LambdaFactory
from mlops_control import names

WEBHOOK = FunctionSpec("webhook", "lambdas.webhook.handler",
                       "MLflow registry webhooks: verify, plan, start deploy/retire", timeout_s=30)
DATA_TRIGGER = FunctionSpec("data-trigger", "lambdas.data_trigger.handler",
                            "New training data in S3: start the training state machine")
RECONCILER = FunctionSpec("reconciler", "lambdas.reconciler.handler",
                          "Scheduled: converge every configured project to the registry",
                          timeout_s=300)
TICK_GROUP = "reconcile"
"""The one message group of the reconciler's FIFO queue: Lambda hands a FIFO queue's group to
one invocation at a time, which is what keeps reconciler runs from overlapping."""


class EventIntake(Construct):
    """Attributes: ``webhook``, ``webhook_url``, ``webhook_secret``, ``data_trigger``,
    ``reconciler``, ``ticks`` (its FIFO queue), ``data_rules``, ``schedule``."""

    def __init__(self, scope: Construct, construct_id: str, *, factory: LambdaFactory,
                 registry_environment: dict[str, str], projects: Sequence[str],
                 stages: Sequence[str], data_bucket: s3.IBucket, data_prefix: str,
                 train: sfn.IStateMachine, deploy: sfn.IStateMachine,
                 retire: sfn.IStateMachine, reconcile_minutes: int,
                 reserved_concurrency: int | None, key: kms.IKey | None) -> None:
        super().__init__(scope, construct_id)
        # The AWS managed key: the MLflow stack reads it too (see control_stack.py).
        self.webhook_secret = secretsmanager.Secret(
            self, "WebhookSecret",
            description="HMAC secret shared with the MLflow webhook",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=48, exclude_punctuation=True))
        Validations.of(self.webhook_secret).acknowledge(Acknowledgment(
            id="AwsSolutions-SMG4",
            reason="the secret is shared with MLflow's webhook; rotating it means updating "
                   "the webhook at the same moment (docs/aws.md: `mlops remote "
                   "rotate-webhook-secret`), which a rotation Lambda cannot do atomically"))

        control_env = {
            **registry_environment,
            names.ENV_DEPLOY_STATE_MACHINE: deploy.state_machine_arn,
            names.ENV_RETIRE_STATE_MACHINE: retire.state_machine_arn,
            names.ENV_STAGES: ",".join(stages),
            names.ENV_PROJECTS: ",".join(projects),
        }
        self.webhook = factory.function(
            WEBHOOK, environment={**control_env,
                                  names.ENV_WEBHOOK_SECRET_ARN: self.webhook_secret.secret_arn},
            reserved_concurrency=reserved_concurrency)
        # Auth NONE: MLflow cannot sign with SigV4. Every delivery is HMAC-verified in the
        # handler (an oversized or unsigned one is refused before the secret is read), and
        # webhook_reserved_concurrency, when set, caps what a flood can take from the account.
        self.webhook_url = self.webhook.add_function_url(
            auth_type=lambda_.FunctionUrlAuthType.NONE)
        self.webhook_secret.grant_read(self.webhook)

        # No reserved concurrency of 1 (a new account has none to reserve): the schedule
        # posts a tick to a FIFO queue with one message group instead, and Lambda never runs
        # two batches of one group at once, so a reconcile that outlasts the interval delays
        # the next one rather than racing it. A tick fails once (no retry: the next tick is
        # the retry), and one that waited longer than an interval or a run expires unseen
        # (never before its own run could have ended), so a backlog cannot grow.
        self.reconciler = factory.function(RECONCILER, environment=control_env)
        queue_encryption = {"encryption": sqs.QueueEncryption.KMS if key
                            else sqs.QueueEncryption.SQS_MANAGED, "encryption_master_key": key}
        failed_ticks = sqs.Queue(self, "FailedReconcileTicks", fifo=True, enforce_ssl=True,
                                 retention_period=Duration.days(14), **queue_encryption)
        Validations.of(failed_ticks).acknowledge(Acknowledgment(
            id="AwsSolutions-SQS3", reason="this queue is the reconcile ticks' DLQ"))
        self.ticks = sqs.Queue(
            self, "ReconcileTicks", fifo=True, content_based_deduplication=True,
            enforce_ssl=True, **queue_encryption,
            visibility_timeout=Duration.seconds(RECONCILER.timeout_s + 30),
            retention_period=Duration.seconds(max(reconcile_minutes * 60,
                                                  RECONCILER.timeout_s + 60)),
            dead_letter_queue=sqs.DeadLetterQueue(queue=failed_ticks, max_receive_count=1))
        self.reconciler.add_event_source(event_sources.SqsEventSource(self.ticks, batch_size=1))
        for fn in (self.webhook, self.reconciler):
            deploy.grant_start_execution(fn)
            retire.grant_start_execution(fn)
            # Only ListExecutions (busy stages); no access to executions' data.
            deploy.grant(fn, "states:ListExecutions")
            retire.grant(fn, "states:ListExecutions")
            self._grant_live(fn, projects)

        self.data_trigger = factory.function(
            DATA_TRIGGER, asynchronous=True,
            environment={names.ENV_TRAIN_STATE_MACHINE: train.state_machine_arn,
                         names.ENV_DATA_PREFIX: data_prefix,
                         names.ENV_PROJECTS: ",".join(projects)})
        train.grant_start_execution(self.data_trigger)

        target_dlq = sqs.Queue(self, "EventTargetDeadLetters", enforce_ssl=True,
                               encryption=sqs.QueueEncryption.KMS if key
                               else sqs.QueueEncryption.SQS_MANAGED,
                               encryption_master_key=key, retention_period=Duration.days(14))
        Validations.of(target_dlq).acknowledge(Acknowledgment(
            id="AwsSolutions-SQS3", reason="this queue is the EventBridge targets' DLQ"))
        if key is not None:
            key.grant_encrypt_decrypt(iam.ServicePrincipal("events.amazonaws.com"))

        self.data_rules: list[events.Rule] = []
        for project in projects:
            rule = events.Rule(
                self, f"NewData-{project}",
                description=f"New training data for {project}",
                event_pattern=events.EventPattern(
                    source=["aws.s3"], detail_type=["Object Created"],
                    detail={"bucket": {"name": [data_bucket.bucket_name]},
                            "object": {"key": [{"prefix": f"{data_prefix}/{project}/"}]}}),
                targets=[targets.LambdaFunction(self.data_trigger, dead_letter_queue=target_dlq,
                                                retry_attempts=4,
                                                max_event_age=Duration.hours(6))])
            self.data_rules.append(rule)

        self.schedule = events.Rule(
            self, "ReconcileSchedule", schedule=events.Schedule.rate(
                Duration.minutes(reconcile_minutes)),
            description="Converge endpoints to the registry (lost events change nothing)",
            targets=[targets.SqsQueue(self.ticks, message_group_id=TICK_GROUP,
                                      dead_letter_queue=target_dlq, retry_attempts=0)])

    def _grant_live(self, fn: lambda_.Function, projects: Sequence[str]) -> None:
        """``live()``: list endpoints, then read only the configured projects' ones."""
        stack = Stack.of(self)
        fn.add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:ListEndpoints"], resources=["*"]))
        scoped = []
        for project in projects:
            for kind in ("endpoint", "endpoint-config"):
                scoped.append(stack.format_arn(service="sagemaker", resource=kind,
                                               resource_name=f"{project}-*"))
        fn.add_to_role_policy(iam.PolicyStatement(
            actions=["sagemaker:DescribeEndpoint", "sagemaker:DescribeEndpointConfig",
                     "sagemaker:ListTags"], resources=scoped))
        for project in projects:
            for kind in ("endpoint", "endpoint-config"):
                nag.wildcard(fn, nag.arn(self, "sagemaker", f"{kind}/{project}-*"),
                             f"endpoints are named <project>-<stage>; {project}'s stages are "
                             "settings, so the prefix is the narrowest stable scope")
