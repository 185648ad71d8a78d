"""Acknowledging cdk-nag findings beside the construct they concern, each with its reason.

cdk-nag v3 matches a finding by its exact id, e.g. ``AwsSolutions-IAM5[Resource::<arn>]``; these
helpers spell the ids the way cdk-nag renders them (literal partition and region, the
account as ``<AWS::AccountId>``, a resource attribute as ``<LogicalId.Arn>``)."""

from __future__ import annotations

from aws_cdk import Acknowledgment, CfnResource, Stack, Validations
from constructs import IConstruct


def ack(scope: IConstruct, rule: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def wildcard(scope: IConstruct, resource: str, reason: str) -> None:
    ack(scope, f"AwsSolutions-IAM5[Resource::{resource}]", reason)


def actions(scope: IConstruct, names: list[str], reason: str) -> None:
    for name in names:
        ack(scope, f"AwsSolutions-IAM5[Action::{name}]", reason)


def arn(scope: IConstruct, service: str, resource: str, regional: bool = True) -> str:
    region = Stack.of(scope).region if regional else ""
    return f"arn:aws:{service}:{region}:<AWS::AccountId>:{resource}"


def attr(construct: IConstruct, attribute: str = "Arn") -> str:
    """``<LogicalId.Arn>`` of an L2 construct's resource, as cdk-nag renders GetAtt."""
    resource = construct.node.default_child
    assert isinstance(resource, CfnResource)
    return f"<{Stack.of(construct).get_logical_id(resource)}.{attribute}>"


S3_GRANT_ACTIONS = ["s3:Abort*", "s3:DeleteObject*", "s3:GetBucket*", "s3:GetObject*",
                    "s3:List*"]
KMS_GRANT_ACTIONS = ["kms:GenerateDataKey*", "kms:ReEncrypt*"]
