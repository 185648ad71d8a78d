"""The other shape of a deployment: an existing MLflow (no MLflow stack) and settings a user
may add once the account's quotas allow. One more synth of the control stack alone, in the
session's process (jsii is running already), with cdk-nag on as for the shared one."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlops_control import names
from tests.infrastructure.conftest import cdk_context

pytestmark = pytest.mark.infrastructure

BUCKET = "corp-mlflow-artifacts"
KEY_ARN = "arn:aws:kms:eu-west-1:111122223333:key/11111111-2222-3333-4444-555555555555"
EXISTING_MLFLOW = {"tracking_uri": "https://mlflow.corp.example",
                   "auth_secret_name": "corp/mlflow-admin",
                   "artifacts_destination": f"s3://{BUCKET}/mlartifacts",
                   "artifact_kms_key_arn": KEY_ARN}


DIRECT_WRITES = {"tracking_uri": "https://mlflow.corp.example",
                 "auth_secret_name": "corp/mlflow-admin",
                 "artifact_bucket": BUCKET, "artifact_kms_key_arn": KEY_ARN}
"""An existing MLflow without an artifact proxy: its clients, training jobs among them, write
the bucket themselves."""


@pytest.fixture(scope="module")
def existing(synth, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The control stack's template with ``EXISTING_MLFLOW`` and a reserved concurrency (the
    shared ``synth`` built the Lambda bundle this one uses)."""
    return control_template(tmp_path_factory, {"mlflow": EXISTING_MLFLOW,
                                               "webhook_reserved_concurrency": 3})


@pytest.fixture(scope="module")
def direct(synth, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return control_template(tmp_path_factory, {"mlflow": DIRECT_WRITES})


def control_template(tmp_path_factory: pytest.TempPathFactory,
                     changes: dict[str, Any]) -> dict[str, Any]:
    from aws_cdk import App, Validations
    from cdk_nag import AwsSolutionsChecks
    from mlops_cdk import settings as settings_mod
    from mlops_cdk.stacks import build

    context = cdk_context()
    raw = {**context["mlops"], **changes}
    outdir = tmp_path_factory.mktemp("cdk.out.existing")
    app = App(outdir=str(outdir), context={**context, "mlops": raw})
    build(app, settings_mod.from_context(raw))
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()  # an unacknowledged cdk-nag finding raises here
    assert sorted(p.name for p in outdir.glob("*.template.json")) == [
        f"{names.STACK_CONTROL}.template.json"]
    return json.loads((outdir / f"{names.STACK_CONTROL}.template.json").read_text())


def sagemaker_role_statements(template: dict[str, Any]) -> list[dict[str, Any]]:
    role = next(lid for lid, r in template["Resources"].items()
                if r["Type"] == "AWS::IAM::Role" and "sagemaker.amazonaws.com" in json.dumps(
                    r["Properties"]["AssumeRolePolicyDocument"]))
    return [st for r in template["Resources"].values()
            if r["Type"] == "AWS::IAM::Policy" and {"Ref": role} in r["Properties"]["Roles"]
            for st in r["Properties"]["PolicyDocument"]["Statement"]]


def actions(statement: dict[str, Any]) -> list[str]:
    action = statement["Action"]
    return action if isinstance(action, list) else [action]


def test_the_sagemaker_role_may_read_the_existing_mlflows_artifacts(existing):
    """Endpoints and Batch Transform load a version's model data from MLflow's artifact
    store with this role: read on its prefix, list on its bucket, decrypt with its key."""
    statements = sagemaker_role_statements(existing)
    reads = [json.dumps(st["Resource"]) for st in statements if "s3:GetObject*" in actions(st)]
    assert any(f":s3:::{BUCKET}/mlartifacts/*" in r for r in reads), reads
    lists = [json.dumps(st["Resource"]) for st in statements if "s3:List*" in actions(st)]
    assert any(f':s3:::{BUCKET}"' in r for r in lists), lists
    decrypts = [st["Resource"] for st in statements if "kms:Decrypt" in actions(st)]
    assert KEY_ARN in decrypts
    writes = [json.dumps(st["Resource"]) for st in statements
              if any(a.startswith(("s3:Put", "s3:Delete")) for a in actions(st))]
    assert not any(BUCKET in w for w in writes), "read only"


def test_training_jobs_may_write_an_existing_mlflows_bucket_its_clients_write_directly(direct):
    """Without an artifact proxy the training job's log_model uploads to the bucket with the
    SageMaker role: denied, the job would fail after training."""
    statements = sagemaker_role_statements(direct)
    writes = [json.dumps(st["Resource"]) for st in statements if "s3:PutObject" in actions(st)]
    assert any(f":s3:::{BUCKET}/*" in w for w in writes), writes
    encrypts = json.dumps([st["Resource"] for st in statements
                           if "kms:GenerateDataKey*" in actions(st)])
    assert KEY_ARN in encrypts


def test_a_reserved_concurrency_that_is_set_lands_on_the_webhook_only(existing):
    functions = {r["Properties"]["Handler"]: r["Properties"]
                 for r in existing["Resources"].values() if r["Type"] == "AWS::Lambda::Function"
                 and "Handler" in r["Properties"]}
    assert functions["lambdas.webhook.handler"]["ReservedConcurrentExecutions"] == 3
    assert [h for h, f in functions.items()
            if "ReservedConcurrentExecutions" in f] == ["lambdas.webhook.handler"]


def test_without_the_mlflow_stack_there_is_no_vpc_and_no_function_in_one(existing):
    kinds = {r["Type"] for r in existing["Resources"].values()}
    assert "AWS::EC2::VPC" not in kinds and "AWS::EC2::NatGateway" not in kinds
    assert not any("VpcConfig" in r["Properties"] for r in existing["Resources"].values()
                   if r["Type"] == "AWS::Lambda::Function")
