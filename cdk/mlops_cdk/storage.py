"""Buckets: training data (S3 events to EventBridge) and artifacts (MLflow artifacts, model
data, data capture, training output), with a KMS key, SSL only, no public access,
versioning, lifecycle rules and server access logs."""

from __future__ import annotations

from aws_cdk import Acknowledgment, Aws, Duration, RemovalPolicy, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

CAPTURE_PREFIX = "capture"
TRAINING_OUTPUT_PREFIX = "training-output"
MLFLOW_PREFIX = "mlflow"


class Storage(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, use_kms: bool,
                 retain: bool) -> None:
        super().__init__(scope, construct_id)
        removal = RemovalPolicy.RETAIN if retain else RemovalPolicy.DESTROY
        self.key: kms.Key | None = None
        if use_kms:
            self.key = kms.Key(self, "Key", enable_key_rotation=True, removal_policy=removal,
                               description="MLOps control centre: buckets, logs, queues")
            # CloudWatch Logs encrypts the control plane's log groups with this key.
            self.key.add_to_resource_policy(iam.PolicyStatement(
                actions=["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*",
                         "kms:GenerateDataKey*", "kms:Describe*"],
                principals=[iam.ServicePrincipal(f"logs.{Aws.REGION}.amazonaws.com")],
                resources=["*"],
                conditions={"ArnLike": {"kms:EncryptionContext:aws:logs:arn":
                                        f"arn:{Aws.PARTITION}:logs:{Aws.REGION}:"
                                        f"{Aws.ACCOUNT_ID}:log-group:*"}}))
        encryption = s3.BucketEncryption.KMS if use_kms else s3.BucketEncryption.S3_MANAGED
        common = {"block_public_access": s3.BlockPublicAccess.BLOCK_ALL, "enforce_ssl": True,
                  "removal_policy": removal, "auto_delete_objects": not retain}

        # S3 server access logging delivers with SSE-S3 only, so this bucket cannot use KMS.
        self.logs_bucket = s3.Bucket(
            self, "AccessLogs", encryption=s3.BucketEncryption.S3_MANAGED,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(365))], **common)
        Validations.of(self.logs_bucket).acknowledge(Acknowledgment(
            id="AwsSolutions-S1",
            reason="this is the access-log bucket; logging it into itself would loop"))

        self.data_bucket = s3.Bucket(
            self, "Data", encryption=encryption, encryption_key=self.key,
            bucket_key_enabled=use_kms, versioned=True, event_bridge_enabled=True,
            server_access_logs_bucket=self.logs_bucket, server_access_logs_prefix="data/",
            lifecycle_rules=[
                s3.LifecycleRule(id="old-versions",
                                 noncurrent_version_expiration=Duration.days(90)),
                s3.LifecycleRule(id="incomplete-uploads",
                                 abort_incomplete_multipart_upload_after=Duration.days(7)),
            ], **common)

        self.artifact_bucket = s3.Bucket(
            self, "Artifacts", encryption=encryption, encryption_key=self.key,
            bucket_key_enabled=use_kms, versioned=True,
            server_access_logs_bucket=self.logs_bucket, server_access_logs_prefix="artifacts/",
            lifecycle_rules=[
                # Captured requests feed the statistics and Model Monitor, then age out.
                s3.LifecycleRule(id="capture", prefix=f"{CAPTURE_PREFIX}/",
                                 transitions=[s3.Transition(
                                     storage_class=s3.StorageClass.INFREQUENT_ACCESS,
                                     transition_after=Duration.days(30))],
                                 expiration=Duration.days(365)),
                s3.LifecycleRule(id="training-output", prefix=f"{TRAINING_OUTPUT_PREFIX}/",
                                 expiration=Duration.days(90)),
                s3.LifecycleRule(id="old-versions",
                                 noncurrent_version_expiration=Duration.days(90)),
                s3.LifecycleRule(id="incomplete-uploads",
                                 abort_incomplete_multipart_upload_after=Duration.days(7)),
            ], **common)

    @property
    def capture_uri(self) -> str:
        return f"s3://{self.artifact_bucket.bucket_name}/{CAPTURE_PREFIX}"

    @property
    def training_output_uri(self) -> str:
        return f"s3://{self.artifact_bucket.bucket_name}/{TRAINING_OUTPUT_PREFIX}/"

    @property
    def mlflow_artifacts_uri(self) -> str:
        return f"s3://{self.artifact_bucket.bucket_name}/{MLFLOW_PREFIX}"
