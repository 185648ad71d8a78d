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
    image_version: str = "3.17.2"
    db_instance_class: str = "t4g.micro"
    multi_az: bool = False
    deletion_protection: bool = True
    allowed_cidrs: tuple[str, ...] = ("0.0.0.0/0",)
    """Who may reach the ALB at all (MLflow's own basic auth guards every request)."""

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

    @model_validator(mode="after")
    def _one_way(self) -> MlflowSettings:
        if self.deploy:
            if not (self.domain_name and self.certificate_arn):
                raise ValueError("mlflow.deploy needs domain_name and certificate_arn (TLS)")
            if self.tracking_uri:
                raise ValueError("give mlflow.tracking_uri only for an existing MLflow")
            _public_https(f"https://{self.domain_name}", "mlflow.domain_name")
        elif not self.tracking_uri:
            raise ValueError("set mlflow.tracking_uri (existing MLflow) or mlflow.deploy: true")
        return self

    @property
    def url(self) -> str:
        return self.tracking_uri or f"https://{self.domain_name}"


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
    webhook_reserved_concurrency: int = Field(default=5, ge=1, le=100)
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
