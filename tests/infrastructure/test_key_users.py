"""Who may use the control plane's customer managed key (the shared synth). Encrypting a
queue, a table or a topic with it is half the job: every principal that writes or reads
through it needs the key too, or the call is refused on a real account (moto does not check
KMS, so only the template can show it)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlops_control import names

pytestmark = pytest.mark.infrastructure


def the_key(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    [(logical, key)] = [(lid, r) for lid, r in template["Resources"].items()
                        if r["Type"] == "AWS::KMS::Key"
                        and "buckets, logs, queues" in r["Properties"].get("Description", "")]
    return logical, key


def role_statements(template: dict[str, Any], role: dict[str, Any]) -> list[dict[str, Any]]:
    return [st for r in template["Resources"].values()
            if r["Type"] == "AWS::IAM::Policy" and role in r["Properties"].get("Roles", [])
            for st in r["Properties"]["PolicyDocument"]["Statement"]]


def actions(statement: dict[str, Any]) -> set[str]:
    action = statement["Action"]
    return set(action if isinstance(action, list) else [action])


def test_every_function_with_a_dead_letter_queue_may_encrypt_for_it(synth):
    """Lambda sends a failed asynchronous event to the DLQ as the function's role."""
    template = synth.templates[names.STACK_CONTROL]
    key, _ = the_key(template)
    with_dlq = {lid: r["Properties"] for lid, r in template["Resources"].items()
                if r["Type"] == "AWS::Lambda::Function"
                and "DeadLetterConfig" in r["Properties"]}
    assert len(with_dlq) >= 2, sorted(with_dlq)  # data-trigger and capture-stats at least
    for logical, function in with_dlq.items():
        role = {"Ref": function["Role"]["Fn::GetAtt"][0]}
        granted = set().union(*[actions(st) for st in role_statements(template, role)
                                if json.dumps(st["Resource"]).count(f'"{key}"')])
        assert {"kms:GenerateDataKey*", "kms:Decrypt"} <= granted, logical


def test_cloudwatch_may_publish_alarms_to_the_encrypted_failures_topic(synth):
    template = synth.templates[names.STACK_CONTROL]
    _, key = the_key(template)
    [(topic_id, topic)] = [(lid, r["Properties"]) for lid, r in template["Resources"].items()
                           if r["Type"] == "AWS::SNS::Topic"]
    assert "KmsMasterKeyId" in topic
    [statement] = [st for st in key["Properties"]["KeyPolicy"]["Statement"]
                   if st.get("Principal", {}).get("Service") == "cloudwatch.amazonaws.com"]
    assert {"kms:Decrypt", "kms:GenerateDataKey*"} <= actions(statement)
    assert ":alarm:*" in json.dumps(statement["Condition"]["ArnLike"]["aws:SourceArn"])
    # And the drift alarms do publish to that topic.
    alarms = [r["Properties"] for r in template["Resources"].values()
              if r["Type"] == "AWS::CloudWatch::Alarm"
              and r["Properties"].get("MetricName") == names.STAT_MAX_DRIFT]
    assert alarms and all(a["AlarmActions"] == [{"Ref": topic_id}] for a in alarms), alarms
