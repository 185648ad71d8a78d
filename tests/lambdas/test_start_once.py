"""Starting an execution exactly once: what counts as a duplicate."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
from botocore.stub import ANY, Stubber

from lambdas.common import adapters

ARN = "arn:aws:states:eu-west-1:123456789012:stateMachine:deploy"


def test_a_fresh_start_is_started_even_when_the_services_clock_is_behind_ours():
    sfn = boto3.client("stepfunctions", region_name="eu-west-1",
                       aws_access_key_id="testing", aws_secret_access_key="testing")
    with Stubber(sfn) as stub:
        # The service stamps the start a little earlier than our clock read it (skew, or
        # its millisecond rounding): a new execution all the same.
        stub.add_response("start_execution", {
            "executionArn": f"{ARN}:x", "startDate": datetime.now(UTC) - timedelta(seconds=2)},
            {"stateMachineArn": ARN, "name": "x", "input": ANY})
        assert adapters.start_once(sfn, ARN, "x", {"project": "p"}) == "started"


def test_a_second_start_of_a_running_execution_is_a_duplicate_and_starts_nothing(aws):
    first = adapters.start_once(aws.sfn, aws.deploy_arn, "p-staging-1-abc", {"project": "p"})
    again = adapters.start_once(aws.sfn, aws.deploy_arn, "p-staging-1-abc", {"project": "p"})
    assert (first, again) == ("started", "duplicate")
    [execution] = aws.executions(aws.deploy_arn)
    assert execution["input"]["project"] == "p"
    assert "requested_at" in json.loads(
        aws.sfn.describe_execution(executionArn=execution["executionArn"])["input"])
