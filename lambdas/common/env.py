"""The Lambdas' environment variables as pydantic models, validated once per cold start.

A missing or malformed variable fails the first invocation with a message naming it, instead
of a KeyError deep inside a workflow step.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from mlops_control import names

Model = TypeVar("Model", bound=BaseModel)


class _Env(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


class RegistryEnv(_Env):
    tracking_uri: str = Field(alias=names.ENV_TRACKING_URI)
    """The MLflow server; https only (plain http and private addresses are local-only)."""
    mlflow_auth_secret_arn: str = Field(default="", alias=names.ENV_MLFLOW_AUTH_SECRET_ARN)

    @field_validator("tracking_uri")
    @classmethod
    def _https(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError("the AWS control plane talks to MLflow over https only")
        return value.rstrip("/")


class ControlEnv(RegistryEnv):
    """Handlers that plan and start deploy/retire executions."""

    deploy_state_machine_arn: str = Field(alias=names.ENV_DEPLOY_STATE_MACHINE)
    retire_state_machine_arn: str = Field(alias=names.ENV_RETIRE_STATE_MACHINE)
    stages: str = Field(alias=names.ENV_STAGES)
    """Comma-separated stage names (from the CDK settings)."""

    @property
    def stage_set(self) -> frozenset[str]:
        return frozenset(s.strip() for s in self.stages.split(",") if s.strip())


class WebhookEnv(ControlEnv):
    webhook_secret_arn: str = Field(alias=names.ENV_WEBHOOK_SECRET_ARN)


class DataTriggerEnv(_Env):
    train_state_machine_arn: str = Field(alias=names.ENV_TRAIN_STATE_MACHINE)
    data_prefix: str = Field(alias=names.ENV_DATA_PREFIX)
    projects: str = Field(alias=names.ENV_PROJECTS)

    @property
    def project_set(self) -> frozenset[str]:
        return frozenset(p.strip() for p in self.projects.split(",") if p.strip())


class GlueEnv(RegistryEnv):
    """The state machines' glue steps: SageMaker settings travel as the backend's env."""

    image_uri: str = Field(alias="MLOPS_IMAGE_URI")
    sagemaker_role_arn: str = Field(alias="MLOPS_SAGEMAKER_ROLE_ARN")
    capture_uri: str = Field(alias=names.ENV_CAPTURE_URI)
    stage_settings: str = Field(alias=names.ENV_STAGE_SETTINGS)
    alarm_settings: str = Field(default="{}", alias=names.ENV_ALARM_SETTINGS)
    artifacts_destination: str = Field(default="", alias=names.ENV_ARTIFACTS_DESTINATION)
    region: str = Field(alias="AWS_REGION")


LOCK_TABLE = "MLOPS_LOCK_TABLE"
"""The DynamoDB table of per-endpoint locks (``lambdas/common/lock.py``)."""


class LockEnv(_Env):
    """The step that takes an endpoint's lock: DynamoDB only, no MLflow."""

    lock_table: str = Field(alias=LOCK_TABLE)


class EndedEnv(RegistryEnv):
    """The handler of ended executions: releases a lock the machine could not, records the
    failure and notifies."""

    lock_table: str = Field(alias=LOCK_TABLE)
    topic_arn: str = Field(alias=names.ENV_NOTIFY_TOPIC)


@functools.cache
def get_environment(model: type[Model]) -> Model:
    return model.model_validate(dict(os.environ))


def init_environment_variables(model: type[BaseModel]) -> Callable[..., Any]:
    """Validate ``model`` before the handler runs (cached: once per cold start)."""
    def decorator(handler: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(handler)
        def wrapper(event: Any, context: Any) -> Any:
            get_environment(model)
            return handler(event, context)
        return wrapper
    return decorator
