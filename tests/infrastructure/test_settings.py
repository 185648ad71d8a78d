"""cdk.json settings: typed, validated, and nothing local-only reaches AWS."""

from __future__ import annotations

import pytest
from mlops_cdk import settings as settings_mod
from pydantic import ValidationError

from tests.infrastructure.conftest import cdk_context


def with_mlflow(**mlflow):
    raw = dict(cdk_context()["mlops"])
    raw["mlflow"] = mlflow
    return raw


def test_the_shipped_cdk_json_is_valid_settings():
    parsed = settings_mod.from_context(cdk_context()["mlops"])
    assert parsed.projects == ("test-project",)
    assert set(parsed.stages) == {"staging", "production"}
    assert parsed.stages["production"].max_capacity >= parsed.stages["production"].min_capacity
    assert parsed.mlflow.url == "https://mlflow.example.com"


@pytest.mark.parametrize("uri", [
    "http://mlflow.example.com",          # plain http
    "https://127.0.0.1:5000",             # loopback
    "https://localhost",                  # local name
    "https://192.168.1.20",               # private range
    "https://10.0.0.5",                   # private range
    "https://172.16.3.4",                 # private range
    "https://[::1]",                      # IPv6 loopback
    "https://mlflow.local",               # mDNS name
])
def test_local_only_tracking_uris_never_reach_the_aws_configuration(uri):
    with pytest.raises(ValidationError, match="tracking_uri"):
        settings_mod.from_context(with_mlflow(tracking_uri=uri))


def test_a_public_https_mlflow_is_accepted():
    parsed = settings_mod.from_context(with_mlflow(
        tracking_uri="https://mlflow.corp.example", artifact_bucket="corp-mlflow"))
    assert parsed.mlflow.url == "https://mlflow.corp.example"


def test_an_existing_mlflow_says_where_its_artifacts_are_or_is_refused():
    """The SageMaker role must be granted read on the bucket the models are in."""
    with pytest.raises(ValidationError, match=r"artifacts_destination \(s3://.* or mlflow\.artifact_bucket"):
        settings_mod.from_context(with_mlflow(tracking_uri="https://mlflow.corp.example"))
    proxied = settings_mod.from_context(with_mlflow(
        tracking_uri="https://mlflow.corp.example",
        artifacts_destination="s3://corp-mlflow/mlartifacts/"))
    assert proxied.mlflow.artifact_location == ("corp-mlflow", "mlartifacts")
    direct = settings_mod.from_context(with_mlflow(
        tracking_uri="https://mlflow.corp.example", artifact_bucket="corp-mlflow"))
    assert direct.mlflow.artifact_location == ("corp-mlflow", "")
    with pytest.raises(ValidationError, match="must be s3://"):
        settings_mod.from_context(with_mlflow(tracking_uri="https://mlflow.corp.example",
                                              artifacts_destination="/srv/mlartifacts"))


def deployed(**mlflow):
    return with_mlflow(deploy=True, domain_name="mlflow.example.com",
                       certificate_arn=cdk_context()["mlops"]["mlflow"]["certificate_arn"],
                       **mlflow)


def test_the_mlflow_stack_needs_the_networks_that_may_reach_it():
    with pytest.raises(ValidationError, match=r"needs mlflow\.allowed_cidrs"):
        settings_mod.from_context(deployed())
    parsed = settings_mod.from_context(deployed(allowed_cidrs=["198.51.100.7/32"]))
    assert parsed.mlflow.allowed_cidrs == ("198.51.100.7/32",)


@pytest.mark.parametrize("cidr, reason", [
    ("0.0.0.0/0", "internet-wide"), ("0.0.0.0/1", "internet-wide"), ("64.0.0.0/7", "internet-wide"),
    ("10.0.0.0/16", "private range"), ("192.168.1.0/24", "private range"),
    ("2001:db8::/32", "IPv4"), ("not-a-cidr", "IPv4"),
])
def test_mlflow_never_faces_the_whole_internet_or_a_range_that_cannot_reach_it(cidr, reason):
    with pytest.raises(ValidationError, match=reason):
        settings_mod.from_context(deployed(allowed_cidrs=[cidr]))


def test_reserved_concurrency_is_off_unless_set():
    raw = dict(cdk_context()["mlops"])
    assert settings_mod.from_context(raw).webhook_reserved_concurrency is None
    assert settings_mod.from_context(
        {**raw, "webhook_reserved_concurrency": 20}).webhook_reserved_concurrency == 20


def test_deploying_mlflow_needs_a_certificate_for_tls():
    with pytest.raises(ValidationError, match="certificate_arn"):
        settings_mod.from_context(with_mlflow(deploy=True, domain_name="mlflow.example.com"))


def test_autoscaling_bounds_must_be_ordered():
    raw = dict(cdk_context()["mlops"])
    raw["stages"] = {"production": {"min_capacity": 3, "initial_instance_count": 1,
                                    "max_capacity": 4}}
    with pytest.raises(ValidationError, match="min_capacity"):
        settings_mod.from_context(raw)


def test_unknown_settings_are_refused_rather_than_ignored():
    raw = {**cdk_context()["mlops"], "instance_tpye": "ml.m5.large"}
    with pytest.raises(ValidationError, match="instance_tpye"):
        settings_mod.from_context(raw)
