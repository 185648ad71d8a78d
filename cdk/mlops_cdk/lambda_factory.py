"""Lambda defaults in one place: runtime, architecture, memory, log retention, tracing,
the VPC placement (with the MLflow stack: see network.py), and the one locally built bundle
(``make lambda-bundle``) every function shares."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aws_cdk import Duration, RemovalPolicy, Validations
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from mlops_cdk import nag

if TYPE_CHECKING:
    from mlops_cdk.network import Network

REPO = Path(__file__).resolve().parents[2]
BUNDLE_DIR = REPO / "build" / "lambda"
RUNTIME = lambda_.Runtime.PYTHON_3_12
"""The bundle is built for (and tested on) CPython 3.12, manylinux x86_64."""


@dataclass(frozen=True)
class FunctionSpec:
    name: str
    handler: str
    description: str
    memory_mb: int = 256
    timeout_s: int = 60


class LambdaFactory:
    """Makes functions with the project's defaults; every function gets its own log group
    (encrypted, with retention) and, when invoked asynchronously, a dead-letter queue. With a
    ``network``, every function runs in its private subnets as one of MLflow's clients.

    No function reserves concurrency unless asked: a new account's quota is often 10
    concurrent executions, all of which Lambda keeps unreserved."""

    def __init__(self, scope: Construct, *, log_retention_days: int, key: kms.IKey | None,
                 bundle_dir: Path = BUNDLE_DIR, network: Network | None = None) -> None:
        if not (bundle_dir / "lambdas" / "__init__.py").is_file():
            raise FileNotFoundError(
                f"no Lambda bundle at {bundle_dir}: run `make lambda-bundle` first")
        self._scope = scope
        self._code = lambda_.Code.from_asset(str(bundle_dir))
        self._retention = logs.RetentionDays(log_retention_days) if isinstance(
            log_retention_days, logs.RetentionDays) else _retention(log_retention_days)
        self._key = key
        self._network = network

    def function(self, spec: FunctionSpec, *, environment: dict[str, str],
                 asynchronous: bool = False, reserved_concurrency: int | None = None
                 ) -> lambda_.Function:
        scope = Construct(self._scope, spec.name)
        log_group = logs.LogGroup(scope, "Logs", retention=self._retention,
                                  encryption_key=self._key,
                                  removal_policy=RemovalPolicy.DESTROY)
        dlq = None
        if asynchronous:
            dlq = sqs.Queue(scope, "DeadLetters", retention_period=Duration.days(14),
                            encryption=sqs.QueueEncryption.KMS if self._key
                            else sqs.QueueEncryption.SQS_MANAGED,
                            encryption_master_key=self._key, enforce_ssl=True)
            Validations.of(dlq).acknowledge(_ack(
                "AwsSolutions-SQS3",
                "this queue is itself the dead-letter queue of a Lambda's async invocations"))
        fn = lambda_.Function(
            scope, "Function",
            description=spec.description,
            runtime=RUNTIME,
            architecture=lambda_.Architecture.X86_64,
            code=self._code,
            handler=spec.handler,
            memory_size=spec.memory_mb,
            timeout=Duration.seconds(spec.timeout_s),
            tracing=lambda_.Tracing.ACTIVE,
            log_group=log_group,
            environment={"POWERTOOLS_SERVICE_NAME": spec.name, "LOG_LEVEL": "INFO",
                         "POWERTOOLS_METRICS_NAMESPACE": "MLOpsControl", **environment},
            environment_encryption=self._key,
            dead_letter_queue=dlq,
            retry_attempts=2 if asynchronous else None,
            reserved_concurrent_executions=reserved_concurrency,
            **self._placement(),
        )
        if dlq is not None and self._key is not None:
            # Lambda sends a failed async event to the queue as the function's role: without
            # the key, SendMessage to a KMS queue is refused and the event is lost.
            self._key.grant_encrypt_decrypt(fn)
            nag.actions(fn, nag.KMS_GRANT_ACTIONS,
                        "the grant on our one KMS key that its dead-letter queue is "
                        "encrypted with (SendMessage to a KMS queue needs GenerateDataKey)")
        Validations.of(fn).acknowledge(_ack(
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
            "AWSLambdaBasicExecutionRole]",
            "the AWS managed basic execution role only lets the function write its own logs"))
        Validations.of(fn).acknowledge(_ack(
            "AwsSolutions-L1",
            "the bundle is built for and tested on Python 3.12 (make lambda-bundle checks "
            "imports on 3.12); moving runtime means rebuilding and re-testing it"))
        Validations.of(fn).acknowledge(_ack(
            "AwsSolutions-IAM5[Resource::*]",
            "only actions without resource-level permissions use '*': X-Ray's "
            "PutTraceSegments/PutTelemetryRecords (tracing=ACTIVE) and, where granted, "
            "SageMaker's List* calls; everything else names its resources"))
        if self._network is not None:
            Validations.of(fn).acknowledge(_ack(
                "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                "AWSLambdaVPCAccessExecutionRole]",
                "the AWS managed policy that lets a function in a VPC manage its network "
                "interfaces; nothing else"))
        return fn

    def _placement(self) -> dict[str, object]:
        if self._network is None:
            return {}
        return {"vpc": self._network.vpc, "vpc_subnets": self._network.client_subnets,
                "security_groups": [self._network.clients]}


def _ack(rule: str, reason: str):  # type: ignore[no-untyped-def]
    from aws_cdk import Acknowledgment

    return Acknowledgment(id=rule, reason=reason)


def _retention(days: int) -> logs.RetentionDays:
    allowed = {1: logs.RetentionDays.ONE_DAY, 3: logs.RetentionDays.THREE_DAYS,
               5: logs.RetentionDays.FIVE_DAYS, 7: logs.RetentionDays.ONE_WEEK,
               14: logs.RetentionDays.TWO_WEEKS, 30: logs.RetentionDays.ONE_MONTH,
               60: logs.RetentionDays.TWO_MONTHS, 90: logs.RetentionDays.THREE_MONTHS,
               180: logs.RetentionDays.SIX_MONTHS, 365: logs.RetentionDays.ONE_YEAR}
    try:
        return allowed[days]
    except KeyError:
        raise ValueError(f"log_retention_days must be one of {sorted(allowed)}") from None
