"""Every setting of the AWS deployment, typed in one place and read from cdk.json's context
(key ``mlops``); override one on the command line with ``-c mlops='{...}'`` or edit cdk.json.

Settings that only make sense on one machine (plain http, loopback or private addresses)
are refused here, so they can never reach the AWS configuration.
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from mlops_control import names

CONTEXT_KEY = "mlops"
_ARN = re.compile(r"^arn:aws[a-z-]*:")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_S3_URI = re.compile(r"^s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?$")
_PRIVATE = [ipaddress.IPv4Network(n) for n in (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16",
    "100.64.0.0/10")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StageSettings(_Model):
    """One endpoint stage (``<project>-<stage>``): size and autoscaling bounds."""

    instance_type: str = Field(default="ml.m5.large", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    initial_instance_count: int = Field(default=1, ge=1, le=20)
    min_capacity: int = Field(default=1, ge=1)
    max_capacity: int = Field(default=2, ge=1, le=100)
    invocations_per_instance: float = Field(default=200.0, gt=0)
    """Target-tracking target: invocations per instance per minute."""

    @model_validator(mode="after")
    def _bounds(self) -> StageSettings:
        if not self.min_capacity <= self.initial_instance_count <= self.max_capacity:
            raise ValueError("need min_capacity <= initial_instance_count <= max_capacity")
        return self


class AlarmSettings(_Model):
    """The alarms that roll a blue/green update back."""

    errors_5xx: float = Field(default=5.0, ge=0)
    latency_p99_ms: float = Field(default=2000.0, gt=0)
    period_s: int = Field(default=60, ge=10)
    evaluation_periods: int = Field(default=2, ge=1)


class TrainingSettings(_Model):
    instance_type: str = Field(default="ml.m5.large", pattern=r"^ml\.[a-z0-9]+\.[a-z0-9]+$")
    volume_gb: int = Field(default=30, ge=1, le=16384)
    max_runtime_s: int = Field(default=3600, ge=60, le=432000)


def _public_https(value: str, what: str) -> str:
    """An address a cloud service can reach: https, and not loopback or private."""
    parsed = urllib.parse.urlparse(value)
    if parsed.scheme != "https":
        raise ValueError(f"{what} must be https on AWS (plain http is for one machine only)")
    host = (parsed.hostname or "").lower()
    if not host:
        raise ValueError(f"{what} has no host")
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        raise ValueError(f"{what} names a local host ({host}); it is unreachable from AWS")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return value.rstrip("/")
    if not address.is_global:
        raise ValueError(f"{what} is a private or loopback address ({host})")
    return value.rstrip("/")


class MlflowSettings(_Model):
    """Either deploy the MLflow stack (``deploy: true``) or use an existing server."""

    deploy: bool = False
    tracking_uri: str | None = None
    """An existing MLflow server (https); with ``deploy`` it is ``https://<domain_name>``."""
    domain_name: str | None = None
    """The name the ALB answers to; the certificate must cover it; point a DNS CNAME at the
    ALB's address (stack output) after the first deploy."""
    certificate_arn: str | None = None
    auth_secret_name: str | None = None
    """Existing MLflow only: a Secrets Manager secret ``{"username", "password"}``."""
    artifacts_destination: str | None = None
    """Existing MLflow that proxies artifacts: its ``--artifacts-destination`` (s3://...)."""
    artifact_bucket: str | None = None
    """Existing MLflow whose clients write S3 directly (no artifact proxy): the bucket its
    artifacts are in. The SageMaker role may read and write it (training jobs upload their
    models; endpoints and Batch Transform load them). With ``artifacts_destination`` instead,
    the role may only read that prefix: the MLflow server does the writing."""
    artifact_kms_key_arn: str | None = None
    """Existing MLflow: the KMS key that bucket encrypts with, if it is a customer managed
    key (the SageMaker role is then granted ``kms:Decrypt`` on it)."""
    image_version: str = "3.17.2"
    db_instance_class: str = "t4g.micro"
    multi_az: bool = False
    deletion_protection: bool = True
    allowed_cidrs: tuple[str, ...] = ()
    """Who (besides the control plane itself) may reach the MLflow stack's ALB: the public
    networks of the people, CI runners and machines that run ``mlops remote``, e.g. an office's
    egress ``/32``. Required with ``deploy``; IPv4, nothing internet-wide (wider than /8) and
    no private range (traffic reaches an internet-facing ALB from public addresses
    only). The control plane's Lambdas and training jobs are let in by the VPC's NAT address."""

    @field_validator("tracking_uri")
    @classmethod
    def _tracking(cls, value: str | None) -> str | None:
        return None if value is None else _public_https(value, "mlflow.tracking_uri")

    @field_validator("certificate_arn")
    @classmethod
    def _certificate(cls, value: str | None) -> str | None:
        if value is not None and not (_ARN.match(value) and ":acm:" in value):
            raise ValueError("mlflow.certificate_arn must be an ACM certificate ARN")
        return value

    @field_validator("artifacts_destination")
    @classmethod
    def _destination(cls, value: str | None) -> str | None:
        if value is not None and not _S3_URI.match(value):
            raise ValueError("mlflow.artifacts_destination must be s3://<bucket>[/<prefix>] "
                             "(SageMaker loads models from S3 only)")
        return value

    @field_validator("artifact_bucket")
    @classmethod
    def _bucket(cls, value: str | None) -> str | None:
        if value is not None and not _BUCKET.match(value):
            raise ValueError("mlflow.artifact_bucket must be an S3 bucket name (no s3://)")
        return value

    @field_validator("artifact_kms_key_arn")
    @classmethod
    def _kms_key(cls, value: str | None) -> str | None:
        if value is not None and not (_ARN.match(value) and ":kms:" in value
                                      and ":key/" in value):
            raise ValueError("mlflow.artifact_kms_key_arn must be a KMS key ARN")
        return value

    @field_validator("allowed_cidrs")
    @classmethod
    def _cidrs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in value:
            try:
                network = ipaddress.IPv4Network(cidr)
            except ValueError as exc:
                raise ValueError(f"mlflow.allowed_cidrs: {cidr!r} is not an IPv4 CIDR (the ALB "
                                 f"is IPv4 only): {exc}") from None
            if network.prefixlen < 8:
                raise ValueError(
                    f"mlflow.allowed_cidrs: {cidr} is internet-wide (wider than /8); "
                    "MLflow's one shared password must not face the whole internet. List the "
                    "networks that use it (e.g. your office's egress address as /32)")
            if any(network.subnet_of(private) for private in _PRIVATE):
                raise ValueError(
                    f"mlflow.allowed_cidrs: {cidr} is a private range; the ALB is internet-facing, "
                    "so clients reach it from public addresses (the control plane is let in "
                    "by the VPC's NAT address without being listed)")
        return value

    @model_validator(mode="after")
    def _one_way(self) -> MlflowSettings:
        if self.deploy:
            if not (self.domain_name and self.certificate_arn):
                raise ValueError("mlflow.deploy needs domain_name and certificate_arn (TLS)")
            if self.tracking_uri:
                raise ValueError("give mlflow.tracking_uri only for an existing MLflow")
            if self.artifacts_destination or self.artifact_bucket or self.artifact_kms_key_arn:
                raise ValueError("mlflow.artifacts_destination, artifact_bucket and "
                                 "artifact_kms_key_arn are for an existing MLflow (the MLflow "
                                 "stack stores artifacts in the control stack's bucket)")
            if not self.allowed_cidrs:
                raise ValueError(
                    "mlflow.deploy needs mlflow.allowed_cidrs: the public networks (CIDR) of "
                    "the people, CI and machines that use MLflow, e.g. [\"203.0.113.7/32\"]; "
                    "nothing is open to the internet by default (docs/aws.md)")
            _public_https(f"https://{self.domain_name}", "mlflow.domain_name")
        elif not self.tracking_uri:
            raise ValueError("set mlflow.tracking_uri (existing MLflow) or mlflow.deploy: true")
        elif self.artifact_location is None:
            raise ValueError(
                "an existing MLflow needs mlflow.artifacts_destination (s3://..., when it proxies "
                "artifacts) or mlflow.artifact_bucket (when clients write S3 directly): the "
                "SageMaker role must be granted read on the bucket the models are in")
        return self

    @property
    def url(self) -> str:
        return self.tracking_uri or f"https://{self.domain_name}"

    @property
    def artifact_location(self) -> tuple[str, str] | None:
        """Existing MLflow: ``(bucket, key prefix)`` the SageMaker role may read; the prefix is
        ``artifacts_destination``'s path ("" for a whole bucket named by ``artifact_bucket``)."""
        if self.artifact_bucket:
            return self.artifact_bucket, ""
        if self.artifacts_destination:
            parsed = urllib.parse.urlparse(self.artifacts_destination)
            return parsed.netloc, parsed.path.strip("/")
        return None


class Settings(_Model):
    region: str = Field(pattern=r"^[a-z]{2}(-gov)?-[a-z]+-[0-9]$")
    """Where everything runs (ALB access logs and per-region image registries need it)."""
    projects: tuple[str, ...]
    """The projects the shared image carries and the control plane acts on."""
    stages: dict[str, StageSettings]
    mlflow: MlflowSettings
    data_prefix: str = Field(default="data", pattern=r"^[a-z0-9][a-z0-9/_-]{0,100}$")
    training: TrainingSettings = TrainingSettings()
    alarms: AlarmSettings = AlarmSettings()
    reconcile_minutes: int = Field(default=5, ge=1, le=60)
    capture_percent: int = Field(default=100, ge=1, le=100)
    log_retention_days: int = 30
    notification_emails: tuple[str, ...] = ()
    webhook_reserved_concurrency: int | None = Field(default=None, ge=1, le=1000)
    """Reserved concurrency of the public webhook (Function URL), capping what a flood of
    requests can take from the account's other functions. Off by default: a new account's
    quota is often 10 concurrent executions, and Lambda keeps 10 unreserved, so any
    reservation fails the deploy. Set it once the quota is raised (docs/aws.md)."""
    encryption: Literal["kms", "s3-managed"] = "kms"
    retain_data: bool = True
    """Keep the buckets and the KMS key when the stack is deleted."""
    code_revision: str = "unknown"
    """The git commit the image is built from (CI passes -c code_revision=$GITHUB_SHA)."""

    @field_validator("projects")
    @classmethod
    def _projects(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("list at least one project")
        for project in value:
            if not names.PROJECT_NAME_PATTERN.match(project):
                raise ValueError(f"{project!r} is not a valid project name")
        return value

    @field_validator("stages")
    @classmethod
    def _stages(cls, value: dict[str, StageSettings]) -> dict[str, StageSettings]:
        if not value:
            raise ValueError("define at least one stage")
        for stage in value:
            if not names.STAGE_PATTERN.match(stage):
                raise ValueError(f"{stage!r} is not a valid stage name")
        return value

    @property
    def data_prefix_clean(self) -> str:
        return self.data_prefix.strip("/")


def from_context(raw: Any, code_revision: str | None = None) -> Settings:
    """Parse the ``mlops`` context value (a dict from cdk.json, or JSON from ``-c``)."""
    if isinstance(raw, str):
        import json

        raw = json.loads(raw)
    if not isinstance(raw, dict):
        raise ValueError(f"cdk.json context {CONTEXT_KEY!r} must be an object")
    if code_revision:
        raw = {**raw, "code_revision": code_revision}
    return Settings.model_validate(raw)
