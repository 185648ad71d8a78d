"""The stacks of one deployment: the control plane, and MLflow when the settings ask."""

from __future__ import annotations

from aws_cdk import App, Environment
import os

from mlops_cdk.control_stack import ControlStack
from mlops_cdk.settings import Settings
from mlops_control import names


def build(app: App, settings: Settings) -> ControlStack:
    account, region = os.environ.get("CDK_DEFAULT_ACCOUNT"), os.environ.get("CDK_DEFAULT_REGION")
    env = Environment(account=account, region=region) if account and region else None
    control = ControlStack(app, names.STACK_CONTROL, settings=settings, env=env,
                           description="MLOps control centre: event-driven control plane")
    if settings.mlflow.deploy:
        from mlops_cdk.mlflow_stack import MlflowStack

        mlflow = MlflowStack(app, names.STACK_MLFLOW, settings=settings, control=control,
                             env=env, description="MLOps control centre: MLflow server")
        mlflow.add_dependency(control)
    return control
