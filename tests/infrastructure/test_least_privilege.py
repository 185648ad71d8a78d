"""Least privilege in the synthesized app (the session's shared synth): no wildcard actions,
SageMaker permissions scoped to the projects' name prefixes wherever SageMaker lets a
resource be named, storage and logs encrypted, no secret in a template. (The webhook's
reserved concurrency is a setting, off by default: test_app.py, test_existing_mlflow.py.)"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from mlops_control import names
from tests.reliability import figures

pytestmark = pytest.mark.infrastructure

# SageMaker actions that cannot be scoped to a resource (the service authorizes them on "*").
SAGEMAKER_UNSCOPED = {"sagemaker:ListEndpoints", "sagemaker:ListEndpointConfigs",
                      "sagemaker:ListModels", "sagemaker:ListTrainingJobs",
                      "sagemaker:ListMonitoringSchedules", "sagemaker:ListTransformJobs"}


def statements(template: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for logical, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        documents = []
        if resource["Type"] in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            documents.append(props.get("PolicyDocument", {}))
        if resource["Type"] == "AWS::IAM::Role":
            documents += [p.get("PolicyDocument", {}) for p in props.get("Policies", [])]
        for document in documents:
            for statement in document.get("Statement", []):
                found.append((logical, statement))
    return found


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def resource_text(statement: dict[str, Any]) -> list[str]:
    return [json.dumps(r) for r in as_list(statement.get("Resource", []))]


def test_no_statement_allows_every_action_of_a_service(synth):
    wild = []
    total = 0
    for stack, template in synth.templates.items():
        for logical, statement in statements(template):
            if statement.get("Effect") != "Allow":
                continue
            total += 1
            for action in as_list(statement.get("Action", [])):
                if action == "*" or re.fullmatch(r"[a-z0-9-]+:\*", action):
                    wild.append(f"{stack}/{logical}: {action}")
    figures.record("security.iam", allow_statements=total, wildcard_actions=len(wild))
    assert wild == []


def test_sagemaker_permissions_name_their_resources_by_project_prefix(synth):
    projects = ["test-project"]
    unscoped, scoped = [], 0
    for stack, template in synth.templates.items():
        for logical, statement in statements(template):
            actions = [a for a in as_list(statement.get("Action", []))
                       if a.startswith("sagemaker:")]
            if not actions or statement.get("Effect") != "Allow":
                continue
            resources = resource_text(statement)
            if any(r == '"*"' for r in resources):
                extra = set(actions) - SAGEMAKER_UNSCOPED
                if extra:
                    unscoped.append(f"{stack}/{logical}: {sorted(extra)} on *")
                continue
            for text in resources:
                if ":sagemaker:" in text or "sagemaker" in text:
                    scoped += 1
                    assert any(p in text for p in projects) or "mlops" in text.lower(), (
                        f"{stack}/{logical}: {actions} on {text[:200]}")
    figures.record("security.iam", sagemaker_scoped_resources=scoped,
                   sagemaker_actions_on_star_beyond_list=len(unscoped))
    assert unscoped == []
    assert scoped > 0


def test_the_sagemaker_role_may_read_only_the_projects_rollback_alarms(synth):
    """Blue/green auto-rollback: SageMaker reads the alarms with the endpoint's execution
    role (cloudwatch:DescribeAlarms), or the UpdateEndpoint fails."""
    template = synth.templates[names.STACK_CONTROL]
    role = next(lid for lid, r in template["Resources"].items()
                if r["Type"] == "AWS::IAM::Role" and "sagemaker.amazonaws.com" in json.dumps(
                    r["Properties"]["AssumeRolePolicyDocument"]))
    granted = [st for logical, st in statements(template)
               if {"Ref": role} in template["Resources"][logical]["Properties"].get("Roles", [])
               and "cloudwatch:DescribeAlarms" in as_list(st["Action"])]
    assert granted, "the SageMaker role cannot read the rollback alarms"
    resources = [r for st in granted for r in resource_text(st)]
    assert resources and all(":alarm:test-project-*" in r for r in resources), resources


def test_buckets_queues_topics_and_logs_are_encrypted(synth):
    unencrypted = []
    for stack, template in synth.templates.items():
        for logical, resource in template["Resources"].items():
            kind, props = resource["Type"], resource.get("Properties", {})
            if kind == "AWS::S3::Bucket" and "BucketEncryption" not in props:
                unencrypted.append(f"{stack}/{logical}")
            if kind == "AWS::Logs::LogGroup" and "KmsKeyId" not in props \
                    and stack == names.STACK_CONTROL:
                unencrypted.append(f"{stack}/{logical}")
            if kind == "AWS::SQS::Queue" and not (props.get("KmsMasterKeyId")
                                                  or props.get("SqsManagedSseEnabled")):
                unencrypted.append(f"{stack}/{logical}")
            if kind == "AWS::SNS::Topic" and "KmsMasterKeyId" not in props:
                unencrypted.append(f"{stack}/{logical}")
    assert unencrypted == []


def test_no_secret_value_is_written_into_a_template(synth):
    for stack, template in synth.templates.items():
        for logical, resource in template["Resources"].items():
            if resource["Type"] == "AWS::SecretsManager::Secret":
                props = resource.get("Properties", {})
                assert "SecretString" not in props, f"{stack}/{logical} holds its value"
        text = json.dumps(template)
        assert "MLOPS_WEBHOOK_SECRET\"" not in text  # only the secret's ARN travels
