"""Run the synthesized state machine definitions end to end in moto's Step Functions
interpreter (``execute_state_machine``), with the honest minimum of patches.

What is real:
- the definitions: ``DefinitionString`` from the synthesized template, every intrinsic
  (``Fn::Join``, ``Ref``, ``Fn::GetAtt``, ``Fn::Sub``) resolved to a resource that
  :class:`MotoStack` creates in moto from the template's own properties (SNS topic, Secrets
  Manager secrets generated as ``GenerateSecretString`` says, buckets, KMS key, IAM roles,
  the state machines themselves);
- moto 5.2.5's ASL interpreter: Choice/Wait/Catch/Retry/ResultSelector/InputPath/intrinsics;
- every AWS request a Task sends goes through a boto3 client **with botocore's parameter
  validation on** and is answered by moto's SageMaker, CloudWatch, Application Auto Scaling
  and SNS backends; every request the glue Lambdas send, too (they make their own clients);
- the glue Lambdas: the template's ``Handler`` (e.g. ``lambdas.deploy_steps.resolve``) is
  imported and called in-process with the template's environment variables, its return value
  JSON-encoded as Lambda's Invoke returns it, an exception turned into Lambda's
  ``FunctionError: Unhandled`` payload (``errorType``, ``errorMessage``);
- MLflow: a real HTTPS server with basic auth (``tests/fake_mlflow.py``) that the Lambdas
  reach with their real ``RegistryClient`` and the credentials they read from Secrets Manager.

What is patched, and why:
- moto's Step Functions builds its service clients with ``parameter_validation=False``;
  :func:`patched_interpreter` swaps in clients with validation on (any ``ParamValidationError``
  is recorded, and the tests assert there was none);
- moto does not map the ``aws-sdk`` service names ``sagemakerruntime`` and
  ``applicationautoscaling`` to boto3's ``sagemaker-runtime``/``application-autoscaling``:
  mapped here as Step Functions does;
- ``aws-sdk`` integrations return blob outputs (``InvokeEndpoint``'s ``Body``) as text; moto
  hands on botocore's stream object, so the stream is read into text;
- Lambda Invoke is routed to the real handler in-process (moto's simple Lambda backend would
  echo the input);
- Wait states return at once (the seconds asked for are recorded);
- SageMaker, as moto lacks it (``tests/moto_sagemaker.py``, shared with the backend's tests):
  ``UpdateEndpoint``, endpoints and training jobs that pass through
  ``Creating``/``Updating``/``InProgress`` before settling, injected faults, and the model
  behind an endpoint, scripted per version, every invocation recorded with what each endpoint
  served at that moment. Each glue Lambda invocation records the same snapshot
  (:attr:`Invocation.endpoints`), so a test can say what served when a failure was recorded.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import re
import secrets
import string
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ParamValidationError
from botocore.response import StreamingBody
from botocore.validate import validate_parameters

from tests import moto_sagemaker
from tests.moto_sagemaker import ACCOUNT, REGION, Serving, World

PSEUDO = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
          "AWS::URLSuffix": "amazonaws.com", "AWS::StackName": "MlopsControl",
          "AWS::NoValue": None}
SFN_TO_BOTO = {"sagemakerruntime": "sagemaker-runtime",
               "applicationautoscaling": "application-autoscaling",
               "sfn": "stepfunctions", "states": "stepfunctions"}
"""Step Functions' aws-sdk service names that differ from boto3's."""


# --- the template's resources, provisioned in moto ------------------------------------------
@dataclass(frozen=True)
class FunctionSpec:
    logical_id: str
    handler: str
    environment: dict[str, str]


class MotoStack:
    """Resolves a synthesized template's intrinsics, creating in moto (on first reference)
    each resource they point at, from the template's own properties."""

    def __init__(self, template: dict[str, Any]) -> None:
        self.template = template
        self.resources: dict[str, dict[str, Any]] = template["Resources"]
        self._attrs: dict[str, dict[str, Any]] = {}
        self.functions: dict[str, FunctionSpec] = {}
        self.secret_values: dict[str, str] = {}

    def logical_id(self, readable: str) -> str:
        """The logical id CDK made from a construct path, e.g. ``WorkflowsDeploy`` for
        ``Workflows/Deploy`` (the readable part plus an eight-digit hash)."""
        found = [lid for lid in self.resources
                 if re.fullmatch(rf"{re.escape(readable)}[0-9A-F]{{8}}", lid)]
        if len(found) != 1:
            raise KeyError(f"{len(found)} logical ids are {readable!r} + hash: {found}")
        return found[0]

    def ref(self, logical_id: str) -> Any:
        return self._provision(logical_id)["Ref"]

    def attr(self, logical_id: str, name: str) -> Any:
        return self._provision(logical_id)[name]

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.resolve(n) for n in node]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, value), = node.items()
            if key == "Ref":
                return PSEUDO[value] if value in PSEUDO else self.ref(value)
            if key == "Fn::GetAtt":
                logical_id, name = value if isinstance(value, list) else value.split(".", 1)
                return self.attr(logical_id, name)
            if key == "Fn::Join":
                delimiter, parts = value
                return delimiter.join(str(self.resolve(p)) for p in self.resolve(parts))
            if key == "Fn::Sub":
                text, variables = (value, {}) if isinstance(value, str) else value
                variables = {k: self.resolve(v) for k, v in variables.items()}
                return re.sub(r"\$\{([^}]+)\}", lambda m: str(self._sub(m.group(1), variables)),
                              text)
            if key.startswith("Fn::"):
                raise NotImplementedError(f"intrinsic {key} is not resolved by the harness")
        return {k: self.resolve(v) for k, v in node.items()}

    def _sub(self, name: str, variables: dict[str, Any]) -> Any:
        if name in variables:
            return variables[name]
        if name in PSEUDO:
            return PSEUDO[name]
        if "." in name:
            logical_id, attr = name.split(".", 1)
            return self.attr(logical_id, attr)
        return self.ref(name)

    def _provision(self, logical_id: str) -> dict[str, Any]:
        if logical_id in self._attrs:
            return self._attrs[logical_id]
        resource = self.resources[logical_id]
        kind, props = resource["Type"], resource.get("Properties", {})
        attrs: dict[str, Any]
        if kind == "AWS::SNS::Topic":
            arn = _client("sns").create_topic(Name=logical_id)["TopicArn"]
            attrs = {"Ref": arn, "TopicArn": arn, "TopicName": logical_id}
        elif kind == "AWS::SecretsManager::Secret":
            value = props.get("SecretString") or _generated_secret(
                props.get("GenerateSecretString", {}))
            arn = _client("secretsmanager").create_secret(
                Name=logical_id, SecretString=value)["ARN"]
            self.secret_values[logical_id] = value
            attrs = {"Ref": arn, "Id": arn}
        elif kind == "AWS::S3::Bucket":
            name = logical_id.lower()[:63]
            _client("s3").create_bucket(Bucket=name, CreateBucketConfiguration={
                "LocationConstraint": REGION})
            attrs = {"Ref": name, "Arn": f"arn:aws:s3:::{name}"}
        elif kind == "AWS::DynamoDB::Table":
            name = logical_id
            table = _client("dynamodb").create_table(
                TableName=name, KeySchema=props["KeySchema"],
                AttributeDefinitions=props["AttributeDefinitions"],
                BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"))["TableDescription"]
            attrs = {"Ref": name, "Arn": table["TableArn"]}
        elif kind == "AWS::KMS::Key":
            meta = _client("kms").create_key(Description=logical_id)["KeyMetadata"]
            attrs = {"Ref": meta["KeyId"], "Arn": meta["Arn"]}
        elif kind == "AWS::IAM::Role":
            arn = _client("iam").create_role(
                RoleName=logical_id[:64], AssumeRolePolicyDocument=json.dumps(
                    self.resolve(props["AssumeRolePolicyDocument"])))["Role"]["Arn"]
            attrs = {"Ref": logical_id[:64], "Arn": arn}
        elif kind == "AWS::Lambda::Function":
            arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{logical_id}"
            attrs = {"Ref": logical_id, "Arn": arn}
            self._attrs[logical_id] = attrs  # before resolving: the environment may refer back
            self.functions[arn] = FunctionSpec(
                logical_id, props["Handler"],
                {k: str(v) for k, v in self.resolve(
                    props.get("Environment", {}).get("Variables", {})).items()})
        elif kind == "AWS::StepFunctions::StateMachine":
            definition = self.resolve(props["DefinitionString"])
            arn = _client("stepfunctions").create_state_machine(
                name=logical_id, definition=definition,
                roleArn=self.resolve(props["RoleArn"]))["stateMachineArn"]
            attrs = {"Ref": arn, "Arn": arn, "Name": logical_id}
        elif kind == "AWS::EC2::VPC":  # the network training jobs run in (network.py)
            vpc_id = _client("ec2").create_vpc(CidrBlock=props["CidrBlock"])["Vpc"]["VpcId"]
            attrs = {"Ref": vpc_id, "VpcId": vpc_id}
        elif kind == "AWS::EC2::Subnet":
            subnet_id = _client("ec2").create_subnet(
                VpcId=self.resolve(props["VpcId"]),
                CidrBlock=props["CidrBlock"])["Subnet"]["SubnetId"]
            attrs = {"Ref": subnet_id, "SubnetId": subnet_id}
        elif kind == "AWS::EC2::SecurityGroup":
            group_id = _client("ec2").create_security_group(
                GroupName=logical_id, Description=props["GroupDescription"],
                VpcId=self.resolve(props["VpcId"]))["GroupId"]
            attrs = {"Ref": group_id, "GroupId": group_id}
        else:
            raise NotImplementedError(f"{logical_id}: the harness does not provision {kind}")
        self._attrs[logical_id] = attrs
        return attrs


def _generated_secret(spec: dict[str, Any]) -> str:
    """What ``GenerateSecretString`` makes: a random string, or a JSON template plus one
    generated key."""
    alphabet = string.ascii_letters + string.digits
    generated = "".join(secrets.choice(alphabet) for _ in range(spec.get("PasswordLength", 32)))
    if "SecretStringTemplate" in spec:
        value = json.loads(spec["SecretStringTemplate"])
        value[spec["GenerateStringKey"]] = generated
        return json.dumps(value)
    return generated


def _client(service: str) -> Any:
    """A client for the test's own set-up and assertions (validation on, as by default)."""
    return boto3.client(service, region_name=REGION)


# --- Lambda: the real handlers, in-process ------------------------------------------------
@dataclass
class Invocation:
    function: str  # the template's logical id
    event: Any
    result: Any = None
    error: str | None = None
    endpoints: dict[str, Serving] = field(default_factory=dict)
    """Every SageMaker endpoint when the function was invoked."""


class LambdaContext:
    def __init__(self, spec: FunctionSpec) -> None:
        self.function_name = spec.logical_id
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = 256
        self.invoked_function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{spec.logical_id}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{spec.logical_id}"
        self.log_stream_name = "test"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 60_000


class LambdaRuntime:
    """Stands in for the Lambda service's Invoke: validates the request as botocore does,
    then runs the function's handler with the function's environment (plus ``overrides``,
    e.g. where MLflow is in this test)."""

    def __init__(self, stack: MotoStack, overrides: dict[str, str], world: World) -> None:
        self.stack = stack
        self.overrides = overrides
        self.world = world
        self.invocations: list[Invocation] = []
        self.before: list[Any] = []
        """Callables ``(handler, event)`` run before a handler, outside the runtime's lock: a
        test may hold one execution there while others run (a race made deterministic)."""
        self._lock = threading.Lock()
        self._shape = _client("lambda").meta.service_model.operation_model("Invoke").input_shape

    def invoke(self, **params: Any) -> dict[str, Any]:
        validate_parameters(params, self._shape)
        spec = self.stack.functions[params["FunctionName"]]
        event = json.loads(params.get("Payload") or b"{}")
        for hook in list(self.before):
            hook(spec.handler, event)
        record = Invocation(spec.logical_id, event, endpoints=self.world.endpoints())
        self.invocations.append(record)
        module_name, _, attr = spec.handler.rpartition(".")
        with self._lock, _environment({**spec.environment, "AWS_REGION": REGION,
                                        "AWS_DEFAULT_REGION": REGION, **self.overrides}):
            handler = getattr(importlib.import_module(module_name), attr)
            try:
                record.result = handler(event, LambdaContext(spec))
            except Exception as exc:
                record.error = f"{type(exc).__name__}: {exc}"
                payload = {"errorMessage": str(exc), "errorType": type(exc).__name__,
                           "requestId": str(uuid.uuid4()),
                           "stackTrace": traceback.format_tb(exc.__traceback__)}
                return _invoke_response(payload, function_error="Unhandled")
        return _invoke_response(record.result)

    def called(self, handler_suffix: str) -> list[Invocation]:
        handlers = {s.logical_id: s.handler for s in self.stack.functions.values()}
        return [i for i in self.invocations if handlers[i.function].endswith(handler_suffix)]


def _invoke_response(payload: Any, function_error: str | None = None) -> dict[str, Any]:
    data = json.dumps(payload).encode()
    response: dict[str, Any] = {"StatusCode": 200, "ExecutedVersion": "$LATEST",
                                "Payload": StreamingBody(io.BytesIO(data), len(data))}
    if function_error:
        response["FunctionError"] = function_error
    return response


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    from lambdas.common.env import get_environment

    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    get_environment.cache_clear()  # a real Lambda reads its own environment on cold start
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_environment.cache_clear()


# --- the interpreter's clients ------------------------------------------------------------
@dataclass
class Calls:
    """Every request the state machines' Tasks sent: (service, operation, params)."""

    sent: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)

    def of(self, operation: str) -> list[dict[str, Any]]:
        return [params for _, op, params in self.sent if op == operation]


class _ValidatingClient:
    """A boto3 client with parameter validation on (moto turns it off), recording calls."""

    def __init__(self, service: str, region: str, calls: Calls) -> None:
        self._service = service
        self._calls = calls
        self._client = boto3.client(
            service, region_name=region, aws_access_key_id="ak", aws_secret_access_key="sk",
            config=Config(retries={"max_attempts": 0, "total_max_attempts": 1}))
        # aws-sdk integrations return blobs as text, not as a stream.
        self._client.meta.events.register("after-call", _read_streams)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name.startswith("_") or not callable(attr) or name in ("meta", "exceptions"):
            return attr

        def call(**params: Any) -> Any:
            try:
                result = attr(**params)
            except ParamValidationError as exc:
                self._calls.invalid.append(f"{self._service}.{name}: {exc}")
                raise
            self._calls.sent.append((self._service, name, params))
            return result
        return call


def _read_streams(parsed: dict[str, Any], **_: Any) -> None:
    for key, value in list(parsed.items()):
        if isinstance(value, StreamingBody):
            parsed[key] = value.read().decode()


@dataclass
class Harness:
    stack: MotoStack
    world: World
    runtime: LambdaRuntime
    calls: Calls
    waits: list[int]

    @property
    def sfn(self) -> Any:
        return _client("stepfunctions")

    def machine(self, readable: str) -> str:
        return str(self.stack.ref(self.stack.logical_id(readable)))

    def run(self, machine_arn: str, payload: dict[str, Any], name: str | None = None,
            timeout_s: float = 60.0) -> Execution:
        arn = self.sfn.start_execution(stateMachineArn=machine_arn, name=name or uuid.uuid4().hex,
                                       input=json.dumps(payload))["executionArn"]
        return self.wait(arn, timeout_s)

    def wait(self, execution_arn: str, timeout_s: float = 60.0) -> Execution:
        deadline = time.monotonic() + timeout_s
        while True:
            described = self.sfn.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"{execution_arn} still RUNNING after {timeout_s}s")
            time.sleep(0.02)
        events = self.sfn.get_execution_history(executionArn=execution_arn,
                                                maxResults=1000)["events"]
        return Execution(described, events)


@dataclass
class Execution:
    described: dict[str, Any]
    events: list[dict[str, Any]]

    @property
    def status(self) -> str:
        return str(self.described["status"])

    @property
    def states(self) -> list[str]:
        """The states entered, in order."""
        return [e["stateEnteredEventDetails"]["name"] for e in self.events
                if "stateEnteredEventDetails" in e]

    @property
    def error(self) -> tuple[str | None, str | None]:
        failed = [e["executionFailedEventDetails"] for e in self.events
                  if "executionFailedEventDetails" in e]
        return (failed[0].get("error"), failed[0].get("cause")) if failed else (None, None)


@contextmanager
def patched_interpreter(monkeypatch: pytest.MonkeyPatch, stack: MotoStack, world: World,
                        overrides: dict[str, str]) -> Iterator[Harness]:
    """Patch moto's Step Functions interpreter as the module docstring says."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import (
        lambda_eval_utils,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk,
        state_task_service_sns,
    )
    from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import (
        WaitFunction,
    )

    calls = Calls()
    runtime = LambdaRuntime(stack, overrides, world)
    waits: list[int] = []

    def client_for(region: str, service: str, state_credentials: Any = None) -> Any:
        boto_service = SFN_TO_BOTO.get(service, service)
        if boto_service == "lambda":
            return runtime
        return _ValidatingClient(boto_service, region, calls)

    for module in (lambda_eval_utils, state_task_service_aws_sdk, state_task_service_sns):
        monkeypatch.setattr(module, "boto_client_for", client_for)
    monkeypatch.setattr(WaitFunction, "_wait_interval",
                        lambda self, env, wait_seconds: waits.append(wait_seconds))
    moto_sagemaker.install(monkeypatch, world)
    yield Harness(stack=stack, world=world, runtime=runtime, calls=calls, waits=waits)
