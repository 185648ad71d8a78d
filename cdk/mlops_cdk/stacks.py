"""The stacks of one deployment: the control plane, and MLflow when the settings ask."""

from __future__ import annotations

import os

from aws_cdk import App, Environment

from mlops_cdk.control_stack import ControlStack
from mlops_cdk.settings import Settings
from mlops_control import names


def build(app: App, settings: Settings) -> ControlStack:
    # The region is a setting; the account is the caller's (CDK_DEFAULT_ACCOUNT at deploy time,
    # absent when synthesizing offline, which keeps the templates account-agnostic).
    env = Environment(account=os.environ.get("CDK_DEFAULT_ACCOUNT"), region=settings.region)
    control = ControlStack(app, names.STACK_CONTROL, settings=settings, env=env,
                           description="MLOps control centre: event-driven control plane")
    if settings.mlflow.deploy:
        from mlops_cdk.mlflow_stack import MlflowStack

        mlflow = MlflowStack(app, names.STACK_MLFLOW, settings=settings, control=control,
                             env=env, description="MLOps control centre: MLflow server")
        mlflow.add_stack_dependency(control)
    return control
