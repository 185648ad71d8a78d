"""Every metric the dashboards and alarms may point at, with who publishes it.

SageMaker publishes the endpoint metrics (documented in "Monitor Amazon SageMaker AI with
Amazon CloudWatch"): invocations, errors and latencies in ``AWS/SageMaker``, instance
utilisation in ``/aws/sagemaker/Endpoints``, both per ``EndpointName`` and ``VariantName``.
The capture-stats Lambda publishes the input and output statistics in
:data:`names.STATS_NAMESPACE`. The tests hold three things to this one list: the dashboard
bodies use only these metrics with exactly these dimensions, the Lambda publishes exactly the
``capture-stats`` ones, and the alarms watch only metrics that exist.

Each metric also says what stands for it on the local dashboards (``local``), if anything.
Standard library only: the Lambda bundle imports it.
"""

from __future__ import annotations

from dataclasses import dataclass

from mlops_control import names

SAGEMAKER = "sagemaker"
CAPTURE_STATS = "capture-stats"
SM_NAMESPACE = "AWS/SageMaker"
SM_INSTANCE_NAMESPACE = "/aws/sagemaker/Endpoints"
SM_DIMENSIONS = ("EndpointName", "VariantName")


@dataclass(frozen=True)
class Metric:
    namespace: str
    name: str
    dimensions: tuple[str, ...]
    unit: str
    """The CloudWatch unit it is published in."""
    publisher: str
    local: str | None
    """The local measurement standing for it (see ``monitoring/series.py``), or None."""
    description: str


def _sm(name: str, unit: str, local: str | None, description: str,
        namespace: str = SM_NAMESPACE) -> Metric:
    return Metric(namespace, name, SM_DIMENSIONS, unit, SAGEMAKER, local, description)


def _ours(name: str, unit: str, local: str, description: str,
          dimensions: tuple[str, ...] = names.STATS_DIMENSIONS) -> Metric:
    return Metric(names.STATS_NAMESPACE, name, dimensions, unit, CAPTURE_STATS, local,
                  description)


METRICS: dict[str, Metric] = {m.name: m for m in (
    _sm("Invocations", "Count", "requests", "requests answered by the model"),
    _sm("Invocation4XXErrors", "Count", "errors_4xx", "requests refused as bad input"),
    _sm("Invocation5XXErrors", "Count", "errors_5xx", "requests the model failed on"),
    _sm("ModelLatency", "Microseconds", "latency",
        "time the container took to answer (locally: arrival to answer in the worker)"),
    _sm("OverheadLatency", "Microseconds", None,
        "time SageMaker's front end adds; there is no front end locally"),
    _sm("CPUUtilization", "Percent", "cpu", "CPU of the instances, 100 per core "
        "(locally: of the worker processes)", SM_INSTANCE_NAMESPACE),
    _sm("MemoryUtilization", "Percent", "memory", "memory in use on the instances "
        "(locally: worker processes' resident memory, of the machine's)",
        SM_INSTANCE_NAMESPACE),
    _sm("DiskUtilization", "Percent", "disk", "disk in use on the instances "
        "(locally: the state folder's file system)", SM_INSTANCE_NAMESPACE),
    _ours(names.STAT_FEATURE_VALUE, "None", "feature_value",
          "a feature's present values (statistic set): Average is the mean"),
    _ours(names.STAT_FEATURE_SPREAD, "None", "feature_std",
          "standard deviation of a feature's values in one capture file"),
    _ours(names.STAT_FEATURE_MISSING, "None", "feature_missing",
          "share of rows in which a feature is absent, null, NaN or infinite"),
    _ours(names.STAT_FEATURE_DRIFT, "None", "feature_drift",
          "population stability index of a feature against the training data"),
    _ours(names.STAT_MAX_DRIFT, "None", "max_drift",
          "the largest feature drift of the endpoint (what the drift alarm watches)",
          names.ENDPOINT_DIMENSIONS),
    _ours(names.STAT_PREDICTION, "None", "prediction",
          "the predictions as a distribution: percentiles, Average, SampleCount (rows)"),
)}


def metric(namespace: str, name: str) -> Metric:
    for candidate in METRICS.values():
        if candidate.namespace == namespace and candidate.name == name:
            return candidate
    raise KeyError(f"{namespace}/{name} is not in the metric catalogue")


def published_by(publisher: str) -> list[Metric]:
    return [m for m in METRICS.values() if m.publisher == publisher]
