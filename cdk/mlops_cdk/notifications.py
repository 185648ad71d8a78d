"""The SNS topic every failure is announced on (training, deployment, retirement)."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Aws
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct


class Notifications(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, key: kms.IKey | None,
                 emails: Sequence[str]) -> None:
        super().__init__(scope, construct_id)
        self.topic = sns.Topic(self, "Failures", display_name="MLOps control centre failures",
                               master_key=key, enforce_ssl=True)
        if key is not None:
            # CloudWatch publishes the drift alarms itself: to an encrypted topic only when
            # the key lets it (SNS: "compatibility between event sources from AWS services
            # and encrypted topics"); otherwise every alarm's notification is dropped.
            key.add_to_resource_policy(iam.PolicyStatement(
                actions=["kms:Decrypt", "kms:GenerateDataKey*"], resources=["*"],
                principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
                conditions={"ArnLike": {"aws:SourceArn": f"arn:{Aws.PARTITION}:cloudwatch:"
                                        f"{Aws.REGION}:{Aws.ACCOUNT_ID}:alarm:*"}}))
        for email in emails:
            self.topic.add_subscription(subscriptions.EmailSubscription(email))
