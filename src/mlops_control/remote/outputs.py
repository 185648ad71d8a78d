"""The ``MlopsControl`` stack's outputs: where everything the remote commands use lives."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from mlops_control import names
from mlops_control.errors import ControlCentreError
from mlops_control.registry import RegistryClient


@dataclass(frozen=True)
class StackOutputs:
    values: Mapping[str, str]
    stack: str = names.STACK_CONTROL

    def require(self, key: str) -> str:
        try:
            return self.values[key]
        except KeyError:
            raise ControlCentreError(
                f"stack {self.stack} has no output {key}; deploy the current version "
                f"(`npx cdk deploy {self.stack}`)") from None

    def optional(self, key: str) -> str | None:
        return self.values.get(key) or None

    @property
    def data_bucket(self) -> str:
        return self.require(names.OUTPUT_DATA_BUCKET)

    @property
    def artifact_bucket(self) -> str:
        return self.require(names.OUTPUT_ARTIFACT_BUCKET)

    @property
    def image_uri(self) -> str:
        return self.require(names.OUTPUT_IMAGE_URI)

    @property
    def sagemaker_role(self) -> str:
        return self.require(names.OUTPUT_SAGEMAKER_ROLE)

    @property
    def train_state_machine(self) -> str:
        return self.require(names.OUTPUT_TRAIN_STATE_MACHINE)

    @property
    def deploy_state_machine(self) -> str:
        return self.require(names.OUTPUT_DEPLOY_STATE_MACHINE)

    @property
    def retire_state_machine(self) -> str:
        return self.require(names.OUTPUT_RETIRE_STATE_MACHINE)

    @property
    def webhook_url(self) -> str:
        return self.require(names.OUTPUT_WEBHOOK_URL)

    @property
    def webhook_secret(self) -> str:
        return self.require(names.OUTPUT_WEBHOOK_SECRET)

    @property
    def data_prefix(self) -> str:
        return self.optional(names.OUTPUT_DATA_PREFIX) or "data"

    @property
    def artifacts_destination(self) -> str | None:
        return self.optional(names.OUTPUT_ARTIFACTS_DESTINATION)


def load(cloudformation: Any, stack: str = names.STACK_CONTROL) -> StackOutputs:
    try:
        described = cloudformation.describe_stacks(StackName=stack)["Stacks"][0]
    except Exception as exc:
        raise ControlCentreError(
            f"cannot read stack {stack} ({exc}); deploy it first (docs/aws.md) and check "
            "your AWS credentials and region") from None
    values = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    return StackOutputs(values=values, stack=stack)


def registry(outputs: StackOutputs, secretsmanager: Any,
             environ: MutableMapping[str, str] | None = None) -> RegistryClient:
    """The control plane's MLflow: ``MLFLOW_TRACKING_URI`` if set, else the stack's; credentials
    from ``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` if set, else from the stack's secret."""
    env = os.environ if environ is None else environ
    uri = env.get(names.ENV_TRACKING_URI) or outputs.require(names.OUTPUT_TRACKING_URI)
    username, password = env.get("MLFLOW_TRACKING_USERNAME"), env.get(
        "MLFLOW_TRACKING_PASSWORD")
    arn = outputs.optional(names.OUTPUT_MLFLOW_AUTH_SECRET)
    if not username and arn:
        try:
            raw = secretsmanager.get_secret_value(SecretId=arn)["SecretString"]
            credentials = json.loads(raw)
            username, password = credentials["username"], credentials["password"]
        except (ValueError, KeyError) as exc:
            raise ControlCentreError(f"the MLflow secret {arn} is not "
                                     f'{{"username", "password"}} JSON ({exc})') from None
        except Exception as exc:
            raise ControlCentreError(f"cannot read the MLflow secret {arn}: {exc}") from None
    client = RegistryClient.from_env(uri)
    client.username, client.password = username, password
    return client
