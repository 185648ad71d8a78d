"""The role SageMaker assumes for training jobs and endpoints of the shared image."""

from __future__ import annotations

from aws_cdk import Acknowledgment, ArnFormat, Aws, Stack, Validations
from aws_cdk import aws_iam as iam
from constructs import Construct

from mlops_cdk import nag


class SageMakerRole(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
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
        Validations.of(self.role).acknowledge(Acknowledgment(
            id="AwsSolutions-IAM5[Resource::*]",
            reason="ecr:GetAuthorizationToken and cloudwatch:PutMetricData take no resource; "
                   "PutMetricData is limited to SageMaker's namespaces by condition"))
        nag.wildcard(self.role, nag.arn(self, "logs", "log-group:/aws/sagemaker/*"),
                     "SageMaker names its log groups per job and endpoint under /aws/sagemaker/")
        nag.wildcard(self.role,
                     nag.arn(self, "logs", "log-group:/aws/sagemaker/*:log-stream:*"),
                     "SageMaker names its log streams per instance")
        self.account = Aws.ACCOUNT_ID

