"""The shared image's ``train`` reads MLflow's basic-auth credentials from Secrets Manager
(``MLOPS_MLFLOW_AUTH_SECRET_ARN``, as the CDK app sets it) before mlflow is used; moto plays
Secrets Manager, so every request is validated by botocore."""

from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from mlops_control import container, names, train_job

REGION = "eu-west-1"


@pytest.fixture
def secrets(monkeypatch, tmp_path):
    for key in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
                "AWS_REGION", "AWS_DEFAULT_REGION"):
        # set, then delete: monkeypatch then restores the variable's absence after the test,
        # even though the code under test writes os.environ itself.
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv(names.ENV_ML_ROOT, str(tmp_path / "ml"))
    with mock_aws():
        yield boto3.client("secretsmanager", region_name=REGION)


def seen_by_mlflow(monkeypatch) -> list:
    """Replace the training itself with a probe that asks mlflow which credentials it would
    send, at the moment training would start."""
    seen: list = []

    def probe(ml_root):
        from mlflow.utils.credentials import read_mlflow_creds

        creds = read_mlflow_creds()
        seen.append((creds.username, creds.password))

    monkeypatch.setattr(train_job, "run", probe)
    return seen


def test_given_the_secret_arn_when_the_job_trains_then_mlflow_sends_the_secrets_credentials(
        secrets, monkeypatch):
    arn = secrets.create_secret(Name="mlflow-admin", SecretString=json.dumps(
        {"username": "admin", "password": "s3cret"}))["ARN"]
    monkeypatch.setenv(names.ENV_MLFLOW_AUTH_SECRET_ARN, arn)
    seen = seen_by_mlflow(monkeypatch)

    assert container.main(["train"]) == 0
    assert seen == [("admin", "s3cret")]


def test_given_an_unreadable_secret_the_job_fails_before_training_and_says_which(
        secrets, monkeypatch, tmp_path):
    missing = f"arn:aws:secretsmanager:{REGION}:123456789012:secret:gone-AbCdEf"
    monkeypatch.setenv(names.ENV_MLFLOW_AUTH_SECRET_ARN, missing)
    seen = seen_by_mlflow(monkeypatch)

    assert container.main(["train"]) == 1
    assert seen == []
    failure = (tmp_path / "ml" / "output" / "failure").read_text()
    assert "cannot read the MLflow credentials secret" in failure and missing in failure


def test_a_secret_that_is_not_username_and_password_fails_the_job_with_the_expected_shape(
        secrets, monkeypatch, tmp_path):
    arn = secrets.create_secret(Name="wrong", SecretString="just-a-password")["ARN"]
    monkeypatch.setenv(names.ENV_MLFLOW_AUTH_SECRET_ARN, arn)
    seen_by_mlflow(monkeypatch)

    assert container.main(["train"]) == 1
    assert '{"username": ..., "password": ...}' in (tmp_path / "ml" / "output" / "failure").read_text()


def test_credentials_already_in_the_environment_win_and_the_secret_is_not_read(
        secrets, monkeypatch):
    monkeypatch.setenv(names.ENV_MLFLOW_AUTH_SECRET_ARN,
                       f"arn:aws:secretsmanager:{REGION}:123456789012:secret:never-read")
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "me")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "mine")
    seen = seen_by_mlflow(monkeypatch)

    assert container.main(["train"]) == 0
    assert seen == [("me", "mine")]
