"""The per-endpoint lock and the small state, on the synthesized deploy and retire machines
executed in moto (the harness of ``test_state_machines``; see ``moto_sfn`` for what is
patched), with moto's DynamoDB behind the lock's real code.

- Two executions of one endpoint (a webhook delivery and a reconciler tick) started together:
  exactly one deploys; the other ends as busy and leaves every registry tag as it was.
- The lock is released after success and after failure.
- An execution that ends where its own states cannot run (stopped; a terminal error such as
  ``States.DataLimitExceeded`` that no Catch sees) is released, recorded ``failed`` and
  notified by the execution-ended handler.
- With a 5000-feature model no state carries more than 32 KB: the test slice travels by
  reference.
"""

# The `aws` fixture is imported from test_state_machines: each test's parameter names it.
# ruff: noqa: F811

from __future__ import annotations

import json
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from mlops_control import names
from tests.infrastructure.moto_sfn import REGION, Execution
from tests.infrastructure.test_state_machines import (  # noqa: F401 (the fixture)
    ENDPOINT,
    PROJECT,
    Aws,
    aws,
    deployed,
)

pytestmark = pytest.mark.infrastructure

STATE_BUDGET = 32 * 1024


def lock_table(aws: Aws) -> str:
    stack = aws.harness.stack
    return str(stack.ref(stack.logical_id("WorkflowsEndpointLocks")))


def locks(aws: Aws) -> list[dict[str, Any]]:
    return boto3.client("dynamodb", region_name=REGION).scan(
        TableName=lock_table(aws))["Items"]


def start(aws: Aws, machine: str, payload: dict[str, Any], name: str) -> str:
    return aws.harness.sfn.start_execution(
        stateMachineArn=aws.harness.machine(machine), name=name,
        input=json.dumps(payload))["executionArn"]


def deploy_input(version: str, replaces: str | None = None) -> dict[str, Any]:
    return {"project": PROJECT, "stage": "production", "version": version,
            "replaces": replaces, "reason": f"deploy to version {version} (test)",
            "rollback_of_deprecated": False}


class Gate:
    """Holds the first invocation of one glue step until the test opens it."""

    def __init__(self, aws: Aws, handler_suffix: str) -> None:
        self.reached, self.opened = threading.Event(), threading.Event()
        self._suffix, self._taken = handler_suffix, False
        aws.harness.runtime.before.append(self)

    def __call__(self, handler: str, event: Any) -> None:
        if handler.endswith(self._suffix) and not self._taken:
            self._taken = True
            self.reached.set()
            assert self.opened.wait(60), "the gate was never opened"


def ended_event(execution: dict[str, Any], **override: Any) -> dict[str, Any]:
    """What EventBridge delivers for an execution that ended ("Step Functions Execution
    Status Change"), from the execution as Step Functions describes it."""
    detail = {"executionArn": execution["executionArn"],
              "stateMachineArn": execution["stateMachineArn"], "name": execution["name"],
              "status": execution["status"], "input": execution["input"],
              "inputDetails": {"included": True}, "output": execution.get("output"),
              "error": execution.get("error"), "cause": execution.get("cause")}
    detail.update(override)
    return {"version": "0", "id": "8f7c-test", "source": "aws.states",
            "detail-type": "Step Functions Execution Status Change", "account": "123456789012",
            "time": "2026-12-07T03:00:00Z", "region": REGION,
            "resources": [execution["executionArn"]], "detail": detail}


def execution_ended(aws: Aws, event: dict[str, Any]) -> dict[str, Any]:
    stack = aws.harness.stack
    arn = stack.attr(stack.logical_id("executionendedFunction"), "Arn")
    response = aws.harness.runtime.invoke(FunctionName=arn, Payload=json.dumps(event).encode())
    assert "FunctionError" not in response, json.load(response["Payload"])
    return json.load(response["Payload"])


# --- the lock itself ---------------------------------------------------------------------
def test_threads_racing_for_one_endpoint_lock_get_exactly_one_winner(aws):
    from lambdas.deploy_steps import LockEvent, acquire_logic

    table, now = lock_table(aws), time.time()
    barrier = threading.Barrier(16)

    def contender(i: int) -> bool:
        client = boto3.client("dynamodb", region_name=REGION)
        event = LockEvent.model_validate({
            "request": {"project": PROJECT, "stage": "production", "version": "1"},
            "kind": "deploy" if i % 2 else "retire", "execution": f"arn:execution:{i}"})
        barrier.wait()
        return bool(acquire_logic(event, client, table, now)["acquired"])

    with ThreadPoolExecutor(16) as pool:
        won = list(pool.map(contender, range(16)))

    assert won.count(True) == 1
    [item] = locks(aws)
    assert item["pk"]["S"] == ENDPOINT
    assert item["owner"]["S"] == f"arn:execution:{won.index(True)}"


def test_a_lock_whose_holder_was_killed_expires_after_the_longest_run(aws):
    from lambdas.common import lock

    client, table = boto3.client("dynamodb", region_name=REGION), lock_table(aws)
    assert lock.acquire(client, table, ENDPOINT, "killed", "deploy", {}, now=1000)
    assert not lock.acquire(client, table, ENDPOINT, "next", "deploy", {},
                            now=1000 + lock.DEPLOY_HOLD_S - 1)
    assert lock.acquire(client, table, ENDPOINT, "next", "deploy", {},
                        now=1000 + lock.DEPLOY_HOLD_S + 1)
    assert lock.release(client, table, ENDPOINT, "killed") is None  # not its lock any more
    assert lock.release(client, table, ENDPOINT, "next") is not None


# --- the state machines ------------------------------------------------------------------
def test_two_deploys_of_one_endpoint_started_together_only_one_deploys(aws):
    aws.add_version("1", deploy="production")
    tags_before = aws.tags("1")
    gate = Gate(aws, ".resolve")  # the winner holds the lock and is still working

    # The webhook delivery and a reconciler tick, each with its own execution name.
    first = start(aws, "WorkflowsDeploy", deploy_input("1"), "delivery-7f8a")
    assert gate.reached.wait(30)
    second = aws.harness.wait(start(aws, "WorkflowsDeploy", deploy_input("1"), "reconcile-42"))
    retire = aws.retire("1")  # a retire of the same endpoint must wait too
    gate.opened.set()
    winner = aws.harness.wait(first)

    assert winner.status == "SUCCEEDED", winner.error
    assert second.status == "SUCCEEDED"
    assert second.states == ["AcquireLock", "EndpointFree?", "EndpointBusy"]
    assert retire.states == ["RetireAcquireLock", "RetireEndpointFree?", "RetireEndpointBusy"]
    # The losers touched nothing: only the winner resolved, deployed and finished.
    assert len(aws.harness.runtime.called(".resolve")) == 1
    assert len(aws.harness.runtime.called(".finish")) == 1
    assert aws.harness.runtime.called(".retire_plan") == []
    assert len(aws.harness.calls.of("create_endpoint")) == 1
    assert aws.tags("1")[names.TAG_DEPLOY] == tags_before[names.TAG_DEPLOY] == "production"
    assert aws.tags("1")[names.TAG_STATUS] == "in_service"
    assert aws.serving_version() == "1"
    assert locks(aws) == []
    assert aws.notifications() == []


def test_the_lock_is_released_after_success_and_after_failure(aws):
    deployed(aws, "1")
    assert locks(aws) == []

    aws.add_version("2", deploy="production", deprecated="true")
    failed = aws.deploy("2", replaces="1")
    assert failed.status == "FAILED"
    assert "ReleaseLockAfterFailure" in failed.states
    assert locks(aws) == []
    assert len(aws.notifications()) == 1
    # EventBridge then reports the failure: the machine recorded it itself, so the handler
    # finds no lock of that execution and records nothing twice.
    described = aws.harness.sfn.describe_execution(
        executionArn=failed.described["executionArn"])
    assert execution_ended(aws, ended_event(described)) == {"released": False}
    assert aws.notifications() == []

    aws.registry.delete_tag(PROJECT, "1", names.TAG_DEPLOY)
    assert aws.retire("1").status == "SUCCEEDED"
    assert locks(aws) == []


def test_a_lock_step_that_fails_touches_nothing_and_is_alerted_with_its_cause(aws):
    """The lock table refuses (here: it is gone; on AWS, say, KMS access denied): the
    execution ends LockUnavailable carrying DynamoDB's own error, and the ended handler sends
    it on, since nothing else would say why the tagged version never deploys."""
    aws.add_version("1", deploy="production")
    dynamodb = boto3.client("dynamodb", region_name=REGION)
    dynamodb.delete_table(TableName=lock_table(aws))

    ended = aws.harness.wait(start(aws, "WorkflowsDeploy", deploy_input("1"), "delivery-kms"))

    assert ended.status == "FAILED" and ended.states == ["AcquireLock", "LockUnavailable"]
    described = aws.harness.sfn.describe_execution(executionArn=ended.described["executionArn"])
    assert described["error"] == "LockUnavailable"
    assert "ResourceNotFoundException" in described["cause"]
    # The table answers again by the time EventBridge delivers the end (as for the handler,
    # whose own key grant is test_everyone_using_the_lock_table_may_use_the_key...).
    dynamodb.create_table(TableName=lock_table(aws), BillingMode="PAY_PER_REQUEST",
                          KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    assert execution_ended(aws, ended_event(described)) == {"released": False,
                                                            "notified": True}
    [notice] = aws.notifications()
    assert notice["subject"] == "Work on test-project-production could not start"
    assert "ResourceNotFoundException" in notice["message"]
    assert aws.tags("1")[names.TAG_DEPLOY] == "production"  # still asked for: retried
    assert names.TAG_STATUS not in aws.tags("1")


@pytest.mark.parametrize("ending", ["stopped", "data limit"])
def test_an_execution_that_ends_outside_its_own_states_is_recorded_failed_and_notified(
        aws, ending):
    aws.add_version("1", deploy="production")
    gate = Gate(aws, ".check_smoke")  # the endpoint exists; the smoke test is under way
    arn = start(aws, "WorkflowsDeploy", deploy_input("1"), f"delivery-{ending[:4]}")
    assert gate.reached.wait(30)
    aws.harness.sfn.stop_execution(executionArn=arn, error="Stopped", cause="by a person")
    gate.opened.set()
    ended = aws.harness.wait(arn)
    assert ended.status == "ABORTED"
    assert "RecordFailure" not in ended.states  # the machine's own failure path never ran
    assert len(locks(aws)) == 1  # still held by the stopped execution
    described = aws.harness.sfn.describe_execution(executionArn=arn)
    event = ended_event(described)
    if ending == "data limit":
        # moto does not enforce the 256 KB limit: this is the event EventBridge sends for an
        # execution killed by it (a terminal error that no Catch, not even States.ALL, sees).
        event = ended_event(described, status="FAILED", error="States.DataLimitExceeded",
                            cause="The state/task returned a result with a size exceeding "
                                  "the maximum number of bytes service limit.")

    answer = execution_ended(aws, event)

    assert answer == {"released": True, "notified": True, "recorded": True}
    assert locks(aws) == []
    tags = aws.tags("1")
    assert tags[names.TAG_STATUS] == "failed"
    assert names.TAG_DEPLOY not in tags
    if ending == "stopped":
        assert "the execution ended ABORTED" in tags[names.TAG_MESSAGE]
    else:
        assert "the execution ended FAILED" in tags[names.TAG_MESSAGE]
        assert "States.DataLimitExceeded" in tags[names.TAG_MESSAGE]
    assert "check test-project-production in SageMaker" in tags[names.TAG_MESSAGE]
    [notice] = aws.notifications()
    assert notice["subject"] == "Deployment to test-project-production failed"
    assert "version 1 was not deployed" in notice["message"]
    # Delivered twice (EventBridge retries): nothing is recorded or sent again.
    assert execution_ended(aws, event) == {"released": False}
    assert aws.notifications() == []


# --- the state's size ----------------------------------------------------------------------
def largest_state(execution: Execution) -> tuple[int, str]:
    sizes = []
    for event in execution.events:
        for key in ("stateEnteredEventDetails", "stateExitedEventDetails"):
            details = event.get(key)
            if details:
                text = details.get("input") or details.get("output") or ""
                sizes.append((len(text.encode()), f"{key}:{details['name']}"))
    return max(sizes)


def test_a_model_with_5000_features_keeps_every_state_under_32_kb(aws):
    columns = [f"feature_{i:04d}" for i in range(5000)]
    wide = {"dataframe_split": {"columns": columns,
                                "data": [[float(i) for i in range(5000)]] * 5}}
    assert len(json.dumps(wide)) > 256 * 1024  # alone over the limit of a state
    for version, replaces in (("1", None), ("2", "1")):  # first deployment, then candidate
        aws.add_version(version, deploy="production")
        aws.registry.smoke[f"run-{version}"] = wide
        seen: list[int] = []
        aws.world.answers[version] = lambda request, seen=seen: (
            seen.append(len(request["dataframe_split"]["columns"])) or json.dumps(
                {"predictions": [0] * len(request["dataframe_split"]["data"])}))
        if replaces:
            aws.registry.delete_tag(PROJECT, replaces, names.TAG_DEPLOY)

        execution = aws.deploy(version, replaces=replaces)

        assert execution.status == "SUCCEEDED", execution.error
        size, where = largest_state(execution)
        assert size < STATE_BUDGET, f"{where}: {size} bytes"
        # The whole slice still reached the endpoint: the smoke step read it by reference.
        assert seen == [5000]
    assert aws.serving_version() == "2"


# --- the template ----------------------------------------------------------------------------
def _policies_of(template: dict[str, Any], role_prefix: str) -> list[dict[str, Any]]:
    found = []
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        roles = [r.get("Ref", "") for r in resource["Properties"].get("Roles", [])]
        if any(r.startswith(role_prefix) for r in roles):
            found += resource["Properties"]["PolicyDocument"]["Statement"]
    return found


def _actions(statements: list[dict[str, Any]], prefix: str) -> set[str]:
    found: set[str] = set()
    for statement in statements:
        actions = statement["Action"]
        found |= {a for a in (actions if isinstance(actions, list) else [actions])
                  if a.startswith(prefix)}
    return found


def test_the_lock_table_and_its_grants_are_least_privilege(synth):
    template = synth.templates[names.STACK_CONTROL]
    [table] = [r["Properties"] for r in template["Resources"].values()
               if r["Type"] == "AWS::DynamoDB::Table"]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    assert table["SSESpecification"]["SSEEnabled"] is True
    assert table["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    # Who may do what with it: the lock step takes, the machines and the handler release.
    assert _actions(_policies_of(template, "endpointlockFunction"), "dynamodb:") == {
        "dynamodb:PutItem"}
    for role in ("WorkflowsDeployRole", "WorkflowsRetireRole", "executionendedFunction"):
        assert _actions(_policies_of(template, role), "dynamodb:") == {
            "dynamodb:DeleteItem"}, role
    # The smoke step invokes the endpoint now; the state machine no longer does.
    assert _actions(_policies_of(template, "WorkflowsDeployRole"),
                    "sagemaker:InvokeEndpoint") == set()
    assert _actions(_policies_of(template, "deploychecksmokeFunction"), "sagemaker:") == {
        "sagemaker:InvokeEndpoint"}


def test_everyone_using_the_lock_table_may_use_the_key_it_is_encrypted_with(synth):
    """A customer managed key: DynamoDB refuses PutItem/DeleteItem with "KMS key access
    denied" unless the caller itself may use the key (Table.grant adds no key permissions),
    and every deploy and retire would end LockUnavailable at its first step."""
    template = synth.templates[names.STACK_CONTROL]
    [table] = [r["Properties"] for r in template["Resources"].values()
               if r["Type"] == "AWS::DynamoDB::Table"]
    key = table["SSESpecification"]["KMSMasterKeyId"]
    for role in ("endpointlockFunction", "WorkflowsDeployRole", "WorkflowsRetireRole",
                 "executionendedFunction"):
        statements = _policies_of(template, role)
        with_key = [st for st in statements if key == st["Resource"]
                    or (isinstance(st["Resource"], list) and key in st["Resource"])]
        assert {"kms:Decrypt", "kms:Encrypt", "kms:GenerateDataKey*"} <= _actions(
            with_key, "kms:"), role


def test_every_end_of_a_deploy_retire_or_train_execution_reaches_the_ended_handler(synth):
    template = synth.templates[names.STACK_CONTROL]
    [rule] = [r["Properties"] for r in template["Resources"].values()
              if r["Type"] == "AWS::Events::Rule"
              and r["Properties"].get("EventPattern", {}).get("source") == ["aws.states"]]
    pattern = rule["EventPattern"]
    assert pattern["detail-type"] == ["Step Functions Execution Status Change"]
    assert set(pattern["detail"]["status"]) == {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
    machines = sorted(m["Ref"][:-8] for m in pattern["detail"]["stateMachineArn"])
    # Logical ids less their hash.
    assert machines == ["WorkflowsDeploy", "WorkflowsRetire", "WorkflowsTrain"]
    [target] = rule["Targets"]
    assert target["Arn"]["Fn::GetAtt"][0].startswith("executionendedFunction")


def test_a_lock_outlasts_the_longest_run_of_its_state_machine(synth):
    """Else a slow but live execution could lose its lock to a second one."""
    from lambdas.common import lock

    stack = synth.templates[names.STACK_CONTROL]["Resources"]
    for readable, kind in (("WorkflowsDeploy", "deploy"), ("WorkflowsRetire", "retire")):
        [machine] = [r for lid, r in stack.items() if lid.startswith(readable)
                     and r["Type"] == "AWS::StepFunctions::StateMachine"]
        definition = json.dumps(machine["Properties"]["DefinitionString"])
        timeout = int(re.search(r"TimeoutSeconds\W+(\d+)", definition).group(1))
        assert timeout < lock.HOLD_S[kind] <= timeout + 3600, (kind, timeout)
