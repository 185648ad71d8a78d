"""The role SageMaker assumes for training jobs and endpoints of the shared image."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Acknowledgment, ArnFormat, Aws, Stack, Validations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_s3 as s3
from constructs import Construct

from mlops_cdk import nag

VPC_ACTIONS = ["ec2:CreateNetworkInterface", "ec2:CreateNetworkInterfacePermission",
               "ec2:DeleteNetworkInterface", "ec2:DeleteNetworkInterfacePermission",
               "ec2:DescribeNetworkInterfaces", "ec2:DescribeVpcs", "ec2:DescribeDhcpOptions",
               "ec2:DescribeSubnets", "ec2:DescribeSecurityGroups"]
"""What SageMaker's documentation lists for a job in a VPC ("Give SageMaker Access to
Resources in your Amazon VPC"); none of them takes a narrower resource there."""


class SageMakerRole(Construct):
    """Attribute: ``role``. ``projects`` scope what names a project (its endpoints' alarms)."""

    def __init__(self, scope: Construct, construct_id: str, *,
                 projects: Sequence[str]) -> None:
        super().__init__(scope, construct_id)
        self.role = iam.Role(self, "Role",
                             assumed_by=iam.ServicePrincipal("sagemaker.amazonaws.com"),
                             description="Shared image: training jobs and endpoints")
        stack = Stack.of(self)
        log_arn = stack.format_arn(service="logs", resource="log-group",
                                   resource_name="/aws/sagemaker/*",
                                   arn_format=ArnFormat.COLON_RESOURCE_NAME)
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents",
                     "logs:DescribeLogStreams"],
            resources=[log_arn, f"{log_arn}:log-stream:*"]))
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["cloudwatch:PutMetricData"], resources=["*"],
            # aws/sagemaker/*: Model Monitor's data-quality metrics (mlops remote monitoring-job).
            conditions={"StringLike": {"cloudwatch:namespace": ["/aws/sagemaker/*",
                                                                 "aws/sagemaker/*",
                                                                 "AWS/SageMaker"]}}))
        # Pulling from ECR needs an account-wide token; the pull itself is granted per repo.
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["ecr:GetAuthorizationToken"], resources=["*"]))
        # A blue/green UpdateEndpoint with AutoRollbackConfiguration: SageMaker reads the
        # rollback alarms with the endpoint's execution role ("Ensure that your IAM execution
        # role has permission to perform the cloudwatch:DescribeAlarms action on the
        # auto-rollback alarms you specify", deployment guardrails). They are named
        # <project>-<stage>-... (names.alarm_names).
        self.role.add_to_policy(iam.PolicyStatement(
            actions=["cloudwatch:DescribeAlarms"],
            resources=[stack.format_arn(service="cloudwatch", resource="alarm",
                                        resource_name=f"{project}-*",
                                        arn_format=ArnFormat.COLON_RESOURCE_NAME)
                       for project in projects]))
        for project in projects:
            nag.wildcard(self.role, nag.arn(self, "cloudwatch", f"alarm:{project}-*"),
                         "the rollback alarms are named after the endpoint, <project>-<stage>-"
                         "...; the project prefix is the narrowest stable scope")
        Validations.of(self.role).acknowledge(Acknowledgment(
            id="AwsSolutions-IAM5[Resource::*]",
            reason="ecr:GetAuthorizationToken and cloudwatch:PutMetricData take no resource; "
                   "PutMetricData is limited to SageMaker's namespaces by condition; with the "
                   "MLflow stack, the EC2 network-interface actions SageMaker needs to run a "
                   "training job in the VPC take none either"))
        nag.wildcard(self.role, nag.arn(self, "logs", "log-group:/aws/sagemaker/*"),
                     "SageMaker names its log groups per job and endpoint under /aws/sagemaker/")
        nag.wildcard(self.role,
                     nag.arn(self, "logs", "log-group:/aws/sagemaker/*:log-stream:*"),
                     "SageMaker names its log streams per instance")
        self.account = Aws.ACCOUNT_ID

    def allow_vpc(self) -> None:
        """Training jobs in the VPC (network.py): SageMaker makes their network interfaces."""
        self.role.add_to_policy(iam.PolicyStatement(actions=VPC_ACTIONS, resources=["*"]))

    def grant_artifacts(self, bucket_name: str, prefix: str, kms_key_arn: str | None, *,
                        write: bool) -> None:
        """An existing MLflow's artifact store: endpoints and Batch Transform load the model
        data from it with this role (``prefix`` "" for the whole bucket). ``write`` when the
        MLflow's clients write S3 themselves (no artifact proxy): a training job is one of
        them, and its ``log_model`` uploads with this role."""
        key = kms.Key.from_key_arn(self, "MlflowArtifactKey", kms_key_arn) if kms_key_arn \
            else None
        bucket = s3.Bucket.from_bucket_attributes(self, "MlflowArtifacts",
                                                  bucket_name=bucket_name, encryption_key=key)
        objects = f"{prefix}/*" if prefix else "*"
        if write:
            bucket.grant_read_write(self.role, objects)
        else:
            bucket.grant_read(self.role, objects)
        nag.wildcard(self.role, f"arn:aws:s3:::{bucket_name}/{objects}",
                     "MLflow writes each model version's artifacts under its own run's prefix")

