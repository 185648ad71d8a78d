"""Data capture to CloudWatch: an S3 ``Object Created`` event (EventBridge) for a file under the
capture prefix becomes the input and output statistics of ``<project>_stats``, with drift
against the training data of the version the endpoint serves (``monitoring/publish.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.parser.models import S3EventNotificationEventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import Field

from lambdas.common import adapters
from lambdas.common.env import RegistryEnv, get_environment, init_environment_variables
from lambdas.common.observability import logger, metrics, tracer
from mlops_control import names
from mlops_control.errors import EventError, RegistryError
from mlops_control.monitoring import capture, publish, reference
from mlops_control.registry import RegistryClient

REFERENCE_TTL_S = 300.0
"""How long a warm function trusts what it learnt about an endpoint's live version."""


class CaptureStatsEnv(RegistryEnv):
    projects: str = Field(alias=names.ENV_PROJECTS)
    capture_prefix: str = Field(alias=names.ENV_CAPTURE_PREFIX)

    @property
    def project_set(self) -> frozenset[str]:
        return frozenset(p.strip() for p in self.projects.split(",") if p.strip())


class References:
    """The training statistics of the version each endpoint serves, cached for a warm
    function: the version for :data:`REFERENCE_TTL_S`, a version's statistics for good
    (registered versions never change)."""

    def __init__(self, registry: RegistryClient, ttl_s: float = REFERENCE_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = registry
        self.ttl_s = ttl_s
        self.clock = clock
        self._versions: dict[str, tuple[float, str | None]] = {}
        self._stats: dict[tuple[str, str], dict[str, Any] | None] = {}

    def for_endpoint(self, project: str, endpoint: str) -> tuple[str | None, dict[str, Any] | None]:
        cached = self._versions.get(endpoint)
        if cached is None or self.clock() - cached[0] > self.ttl_s:
            cached = (self.clock(), reference.live_version(self.registry, project, endpoint))
            self._versions[endpoint] = cached
        version = cached[1]
        if version is None:
            return None, None
        if (project, version) not in self._stats:
            self._stats[(project, version)] = reference.training_stats(self.registry, project,
                                                                       version)
        return version, self._stats[(project, version)]


def project_of(endpoint: str, projects: frozenset[str]) -> str | None:
    """The configured project whose ``<project>-<stage>`` is ``endpoint`` (project names may
    hold hyphens, stage names may not)."""
    for project in sorted(projects, key=len, reverse=True):
        stage = endpoint.removeprefix(f"{project}-")
        if endpoint.startswith(f"{project}-") and names.STAGE_PATTERN.match(stage):
            return project
    return None


def publish_capture(bucket: str, key: str, env: CaptureStatsEnv, s3: Any, cloudwatch: Any,
                    references: References) -> dict[str, Any]:
    """Read one capture file and publish its statistics; what was done, for the log."""
    prefix = env.capture_prefix.strip("/") + "/"
    if not key.startswith(prefix):
        raise EventError(f"{key} is not under the capture prefix {prefix}")
    endpoint, variant = capture.endpoint_of(key)
    project = project_of(endpoint, env.project_set)
    if project is None:
        raise EventError(f"{endpoint} is not an endpoint of a configured project")
    try:
        version, stats = references.for_endpoint(project, endpoint)
    except RegistryError as exc:
        # The statistics are worth publishing without drift rather than not at all.
        logger.warning("training statistics unavailable; publishing without drift",
                       extra={"endpoint": endpoint, "error": str(exc)[:300]})
        version, stats = None, None
    text = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
    parsed = capture.read(text, (stats or {}).get("feature_order") or ())
    data = publish.datums(parsed, project, endpoint, stats)
    sent = 0
    for request in publish.requests(data):
        cloudwatch.put_metric_data(**request)
        sent += 1
    drift = publish.drift_per_feature(parsed, stats, publish.features_of(parsed, stats))
    return {"endpoint": endpoint, "variant": variant, "project": project, "version": version,
            "records": parsed.records, "skipped": parsed.skipped,
            "skip_reasons": parsed.reasons, "datums": len(data), "requests": sent,
            "reference": stats is not None,
            "max_drift": round(max(drift.values()), 4) if drift else None}


_references: References | None = None


def _cached_references(env: CaptureStatsEnv) -> References:
    global _references
    if _references is None:
        _references = References(adapters.registry_client(env))
    return _references


@init_environment_variables(model=CaptureStatsEnv)
@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
@event_parser(model=S3EventNotificationEventBridgeModel)
def handler(event: S3EventNotificationEventBridgeModel, context: LambdaContext
            ) -> dict[str, Any]:
    env = get_environment(CaptureStatsEnv)
    key = event.detail.object.key
    try:
        result = publish_capture(event.detail.bucket.name, key, env, adapters.client("s3"),
                                 adapters.client("cloudwatch"), _cached_references(env))
    except EventError as exc:
        # Not retried: the same object would be refused again.
        logger.warning("capture file ignored", extra={"reason": exc.reason, "key": key})
        metrics.add_metric(name="CaptureFileIgnored", unit=MetricUnit.Count, value=1)
        return {"result": "ignored", "reason": exc.reason}
    metrics.add_metric(name="CaptureRecordsRead", unit=MetricUnit.Count,
                       value=result["records"])
    metrics.add_metric(name="CaptureRecordsSkipped", unit=MetricUnit.Count,
                       value=result["skipped"])
    logger.info("capture statistics published", extra=result)
    return {"result": "published", **result}
