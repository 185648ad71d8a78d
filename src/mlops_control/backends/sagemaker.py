"""The SageMaker backend: endpoints ``<project>-<stage>`` served by the shared image.

Two callers share every request this module builds:

- :class:`SageMakerBackend` sends them itself with boto3 (the CLI's remote commands, and
  ``live()`` for the Lambdas);
- the deployment state machine sends them through ``aws-sdk`` service integrations: the
  ``resolve`` glue Lambda returns them (:func:`deployment_requests`) and each Task state names
  their fields (:func:`deployment_request_fields`), so a request shape is written once, here.

Both deploy the same way. A first deployment creates the endpoint, smoke-tests it and deletes
it if the test fails (nothing served before). A replacement never lets the live endpoint send
an untested version any traffic: the new version is smoke-tested first on a short-lived
*candidate* endpoint of its own (one instance, a name no client knows, see
``names.candidate_endpoint_name``), which is deleted whatever the outcome; only a version that
passed is put on the live endpoint, by a blue/green update that the alarms can roll back. A
failure before the update leaves the live endpoint untouched; a failure after it puts the
previous config back and waits until it serves again before the failure is reported.

boto3 clients are passed in (tests hand in moto or Stubber clients). Standard library only
apart from the clients, so the Lambdas can import it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, NoReturn

from mlops_control import names
from mlops_control.dashboards import cloudwatch as dashboards
from mlops_control.errors import ControlCentreError
from mlops_control.registry import RegistryClient
from mlops_control.steps.backend import DeploymentFailed, DeployTarget

logger = logging.getLogger("mlops_control.sagemaker")

SERVING_STATES = frozenset({"InService", "Updating", "SystemUpdating", "RollingBack",
                            "UpdateRollbackFailed"})
"""Endpoint states in which the endpoint's current config answers requests."""
WAITING_STATES = frozenset({"Creating", "Updating", "SystemUpdating", "RollingBack"})


@dataclass(frozen=True)
class StageConfig:
    """How an endpoint of one stage is sized and scaled (from the CDK settings)."""

    instance_type: str = "ml.m5.large"
    initial_instance_count: int = 1
    min_capacity: int = 1
    max_capacity: int = 2
    invocations_per_instance: float = 200.0
    """Target of the target-tracking policy: SageMakerVariantInvocationsPerInstance/minute."""


@dataclass(frozen=True)
class AlarmConfig:
    """Thresholds of the alarms that roll a blue/green update back."""

    errors_5xx: float = 5.0
    """Invocation5XXErrors summed over one period."""
    latency_p99_ms: float = 2000.0
    period_s: int = 60
    evaluation_periods: int = 2


@dataclass(frozen=True)
class SageMakerConfig:
    image_uri: str
    role_arn: str
    capture_uri: str
    """``s3://bucket/prefix`` under which endpoints write captured requests and responses."""
    region: str
    stages: Mapping[str, StageConfig] = field(default_factory=dict)
    alarms: AlarmConfig = field(default_factory=AlarmConfig)
    artifacts_destination: str | None = None
    """Where the MLflow server proxies ``mlflow-artifacts:/`` to; None when clients write S3
    directly (then model versions already name ``s3://`` locations)."""
    capture_percent: int = 100
    kms_key_arn: str | None = None
    termination_wait_s: int = 300
    """Blue/green: how long the old fleet stays up after the switch, ready for a rollback."""
    max_update_s: int = 3600

    def stage(self, stage: str) -> StageConfig:
        try:
            return self.stages[stage]
        except KeyError:
            raise DeploymentFailed(
                f"stage {stage!r} has no settings; configured: {', '.join(sorted(self.stages))}"
            ) from None

    def to_env(self) -> dict[str, str]:
        """The Lambdas' environment (see :meth:`from_env`)."""
        return {
            "MLOPS_IMAGE_URI": self.image_uri,
            "MLOPS_SAGEMAKER_ROLE_ARN": self.role_arn,
            names.ENV_CAPTURE_URI: self.capture_uri,
            names.ENV_STAGE_SETTINGS: json.dumps({k: asdict(v) for k, v in self.stages.items()},
                                                 sort_keys=True),
            names.ENV_ALARM_SETTINGS: json.dumps(asdict(self.alarms), sort_keys=True),
            names.ENV_ARTIFACTS_DESTINATION: self.artifacts_destination or "",
            "MLOPS_KMS_KEY_ARN": self.kms_key_arn or "",
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str], region: str) -> SageMakerConfig:
        stages = json.loads(env.get(names.ENV_STAGE_SETTINGS) or "{}")
        alarms = json.loads(env.get(names.ENV_ALARM_SETTINGS) or "{}")
        return cls(
            image_uri=env["MLOPS_IMAGE_URI"], role_arn=env["MLOPS_SAGEMAKER_ROLE_ARN"],
            capture_uri=env[names.ENV_CAPTURE_URI], region=region,
            stages={k: StageConfig(**v) for k, v in stages.items()},
            alarms=AlarmConfig(**alarms),
            artifacts_destination=env.get(names.ENV_ARTIFACTS_DESTINATION) or None,
            kms_key_arn=env.get("MLOPS_KMS_KEY_ARN") or None,
        )


def model_data_uri(artifact_uri: str, artifacts_destination: str | None) -> str:
    """The S3 prefix SageMaker copies into ``/opt/ml/model`` for a model version's artifacts.

    MLflow names them ``s3://...`` when clients write S3 directly, or ``mlflow-artifacts:/...``
    when the server proxies artifacts to ``artifacts_destination``."""
    uri = artifact_uri.rstrip("/")
    if uri.startswith("mlflow-artifacts:"):
        if not artifacts_destination:
            raise DeploymentFailed(
                f"model artifacts at {artifact_uri} are proxied by the MLflow server, and no "
                "artifacts destination is configured to find them in S3")
        rest = uri.removeprefix("mlflow-artifacts:").lstrip("/")
        # mlflow-artifacts://host:port/path carries the server's address before the path.
        if artifact_uri.startswith("mlflow-artifacts://"):
            rest = rest.partition("/")[2]
        uri = f"{artifacts_destination.rstrip('/')}/{rest}"
    if not uri.startswith("s3://"):
        raise DeploymentFailed(
            f"model artifacts at {artifact_uri} are not in S3; SageMaker loads models from S3 "
            "only (run MLflow with an s3:// artifact store)")
    # An S3Prefix must end with '/', or s3://b/model would also match s3://b/model-2/...
    return uri + "/"


@dataclass(frozen=True)
class DeploymentSpec:
    """Every name of one deployment of one version to one endpoint."""

    project: str
    stage: str
    version: str
    endpoint: str
    model_name: str
    config_name: str
    model_data_uri: str
    token: str
    candidate_endpoint: str = ""
    """Where a replacement is smoke-tested before the live endpoint serves it (empty for a
    spec that never serves, such as Batch Transform's)."""
    candidate_config_name: str = ""

    @classmethod
    def create(cls, target: DeployTarget, model_data: str, token: str) -> DeploymentSpec:
        name = names.sagemaker_resource_name(target.endpoint, target.version, token)
        return cls(project=target.project, stage=target.stage, version=target.version,
                   endpoint=target.endpoint, model_name=name, config_name=name,
                   model_data_uri=model_data, token=token,
                   candidate_endpoint=names.candidate_endpoint_name(target.endpoint, token),
                   candidate_config_name=names.sagemaker_resource_name(
                       target.endpoint, target.version, token, names.CANDIDATE_ROLE))

    def tags(self) -> list[dict[str, str]]:
        return [{"Key": names.SM_TAG_PROJECT, "Value": self.project},
                {"Key": names.SM_TAG_STAGE, "Value": self.stage},
                {"Key": names.SM_TAG_VERSION, "Value": self.version},
                {"Key": names.SM_TAG_ENDPOINT, "Value": self.endpoint}]


# --- the requests, shared with the state machine ------------------------------------------
def create_model_request(spec: DeploymentSpec, cfg: SageMakerConfig) -> dict[str, Any]:
    return {
        "ModelName": spec.model_name,
        "ExecutionRoleArn": cfg.role_arn,
        "PrimaryContainer": {
            "Image": cfg.image_uri,
            "Mode": "SingleModel",
            # Uncompressed: SageMaker copies the MLflow model folder as it is, no model.tar.gz.
            "ModelDataSource": {"S3DataSource": {
                "S3Uri": spec.model_data_uri, "S3DataType": "S3Prefix",
                "CompressionType": "None"}},
            "Environment": {"MLOPS_PROJECT": spec.project, "MLOPS_MODEL_VERSION": spec.version},
        },
        "Tags": spec.tags(),
    }


def create_endpoint_config_request(spec: DeploymentSpec, cfg: SageMakerConfig
                                   ) -> dict[str, Any]:
    stage = cfg.stage(spec.stage)
    request: dict[str, Any] = {
        "EndpointConfigName": spec.config_name,
        "ProductionVariants": [{
            "VariantName": names.SM_VARIANT, "ModelName": spec.model_name,
            "InstanceType": stage.instance_type,
            "InitialInstanceCount": stage.initial_instance_count,
        }],
        "DataCaptureConfig": {
            "EnableCapture": True,
            "InitialSamplingPercentage": cfg.capture_percent,
            "DestinationS3Uri": f"{cfg.capture_uri.rstrip('/')}/{spec.endpoint}",
            "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
            "CaptureContentTypeHeader": {"JsonContentTypes": ["application/json"],
                                         "CsvContentTypes": ["text/csv"]},
        },
        "Tags": spec.tags(),
    }
    if cfg.kms_key_arn:
        request["DataCaptureConfig"]["KmsKeyId"] = cfg.kms_key_arn
    return request


def create_candidate_config_request(spec: DeploymentSpec, cfg: SageMakerConfig
                                    ) -> dict[str, Any]:
    """The candidate endpoint's config: the new model on one instance of the stage's type
    (what the smoke test needs), no data capture (the test slice is not traffic). Tagged like
    the live configs, so that retire finds and deletes it."""
    return {
        "EndpointConfigName": spec.candidate_config_name,
        "ProductionVariants": [{
            "VariantName": names.SM_VARIANT, "ModelName": spec.model_name,
            "InstanceType": cfg.stage(spec.stage).instance_type, "InitialInstanceCount": 1,
        }],
        "Tags": spec.tags(),
    }


def create_candidate_endpoint_request(spec: DeploymentSpec) -> dict[str, Any]:
    return {"EndpointName": spec.candidate_endpoint,
            "EndpointConfigName": spec.candidate_config_name, "Tags": spec.tags()}


def alarm_requests(endpoint: str, cfg: SageMakerConfig) -> list[dict[str, Any]]:
    """The 5xx and latency alarms the blue/green update watches (one pair per endpoint)."""
    errors, latency = names.alarm_names(endpoint)
    dims = [{"Name": "EndpointName", "Value": endpoint},
            {"Name": "VariantName", "Value": names.SM_VARIANT}]
    common = {"Dimensions": dims, "Namespace": "AWS/SageMaker", "Period": cfg.alarms.period_s,
              "EvaluationPeriods": cfg.alarms.evaluation_periods,
              "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching"}
    return [
        {"AlarmName": errors, "MetricName": "Invocation5XXErrors", "Statistic": "Sum",
         "Threshold": cfg.alarms.errors_5xx,
         "AlarmDescription": f"5xx errors of {endpoint}: rolls a blue/green update back",
         **common},
        # ModelLatency is reported in microseconds.
        {"AlarmName": latency, "MetricName": "ModelLatency", "ExtendedStatistic": "p99",
         "Threshold": cfg.alarms.latency_p99_ms * 1000.0,
         "AlarmDescription": f"p99 model latency of {endpoint}: rolls a blue/green update back",
         **common},
    ]


def create_endpoint_request(spec: DeploymentSpec) -> dict[str, Any]:
    return {"EndpointName": spec.endpoint, "EndpointConfigName": spec.config_name,
            "Tags": [t for t in spec.tags() if t["Key"] != names.SM_TAG_VERSION]}


def update_endpoint_request(spec: DeploymentSpec, cfg: SageMakerConfig) -> dict[str, Any]:
    """Blue/green: the new fleet is provisioned beside the old one and takes all traffic at
    once when healthy; the old fleet stays ``termination_wait_s`` while the alarms watch."""
    return {
        "EndpointName": spec.endpoint,
        "EndpointConfigName": spec.config_name,
        "DeploymentConfig": {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE",
                                                "WaitIntervalInSeconds": 0},
                "TerminationWaitInSeconds": cfg.termination_wait_s,
                "MaximumExecutionTimeoutInSeconds": cfg.max_update_s,
            },
            "AutoRollbackConfiguration": {
                "Alarms": [{"AlarmName": a} for a in names.alarm_names(spec.endpoint)]},
        },
    }


def revert_endpoint_request(endpoint: str, previous_config: str) -> dict[str, Any]:
    """Back to the config that served before (after a failure once the new one served)."""
    return {"EndpointName": endpoint, "EndpointConfigName": previous_config}


def scalable_target_request(spec: DeploymentSpec, cfg: SageMakerConfig) -> dict[str, Any]:
    stage = cfg.stage(spec.stage)
    return {"ServiceNamespace": "sagemaker",
            "ResourceId": names.scaling_resource_id(spec.endpoint),
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
            "MinCapacity": stage.min_capacity, "MaxCapacity": stage.max_capacity}


def scaling_policy_request(spec: DeploymentSpec, cfg: SageMakerConfig) -> dict[str, Any]:
    stage = cfg.stage(spec.stage)
    return {
        "PolicyName": f"{spec.endpoint}-invocations",
        "ServiceNamespace": "sagemaker",
        "ResourceId": names.scaling_resource_id(spec.endpoint),
        "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
        "PolicyType": "TargetTrackingScaling",
        "TargetTrackingScalingPolicyConfiguration": {
            "TargetValue": stage.invocations_per_instance,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
            "ScaleInCooldown": 300, "ScaleOutCooldown": 60,
        },
    }


def features_of(payload: Mapping[str, Any] | None) -> list[str]:
    """Input column names of a smoke-test payload (``dataframe_split``), for the dashboards."""
    split = (payload or {}).get("dataframe_split") or {}
    return [str(c) for c in split.get("columns") or []]


def dashboard_requests(spec: DeploymentSpec, cfg: SageMakerConfig,
                       features: list[str]) -> list[dict[str, Any]]:
    # Every stage's endpoint: the dashboards are the project's, whichever stage deploys.
    stages = [names.endpoint_name(spec.project, stage) for stage in cfg.stages]
    metrics = dashboards.metrics_dashboard(spec.project, spec.endpoint, names.SM_VARIANT,
                                           cfg.region, endpoints=stages)
    stats = dashboards.stats_dashboard(spec.project, spec.endpoint, features, cfg.region,
                                       endpoints=stages)
    return [
        {"DashboardName": names.metrics_dashboard(spec.project),
         "DashboardBody": json.dumps(metrics, separators=(",", ":"))},
        {"DashboardName": names.stats_dashboard(spec.project),
         "DashboardBody": json.dumps(stats, separators=(",", ":"))},
    ]


def smoke_request(endpoint: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    return {"EndpointName": endpoint, "ContentType": "application/json",
            "Accept": "application/json", "Body": json.dumps(payload)}


def expected_rows(payload: Mapping[str, Any]) -> int:
    if "dataframe_split" in payload:
        return len(payload["dataframe_split"].get("data") or [])
    return len(payload.get("instances") or payload.get("inputs") or [])


def check_smoke_response(body: str | bytes, rows: int) -> int:
    """An endpoint's answer to the smoke test must be one prediction per row sent, in the
    MLflow scoring protocol (``{"predictions": [...]}``). Returns the number of predictions."""
    try:
        answer = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise DeploymentFailed(f"smoke test: the endpoint did not answer JSON: "
                               f"{str(body)[:200]!r}") from None
    predictions = answer.get("predictions") if isinstance(answer, dict) else answer
    if not isinstance(predictions, list):
        raise DeploymentFailed(f"smoke test: no predictions in the answer: {str(body)[:200]!r}")
    if len(predictions) != rows:
        raise DeploymentFailed(
            f"smoke test: {len(predictions)} predictions for {rows} rows sent")
    return len(predictions)


def deployment_requests(spec: DeploymentSpec, cfg: SageMakerConfig,
                        smoke_payload: Mapping[str, Any] | None,
                        previous_config: str | None,
                        smoke_run_id: str | None = None) -> dict[str, Any]:
    """Every request of one deployment, as the state machine takes them (see module doc).

    The test slice itself is not among them: a model with thousands of features makes it
    larger than Step Functions' 256 KB state. ``smoke`` is a reference (the endpoint to ask
    and the run whose ``smoke_test.json`` artifact holds the slice); the smoke step reads
    the slice from MLflow and invokes the endpoint itself. The dashboards are not among
    them either (see :func:`dashboard_requests`)."""
    alarms = alarm_requests(spec.endpoint, cfg)
    exists = previous_config is not None
    # A replacement is smoke-tested on its candidate endpoint, before the live endpoint sends
    # it anything; a first deployment on the new endpoint itself, which served nothing yet.
    smoke_on = spec.candidate_endpoint if exists else spec.endpoint
    return {
        "spec": asdict(spec),
        "endpoint_exists": exists,
        "previous_config": previous_config or "",
        "create_model": create_model_request(spec, cfg),
        "create_endpoint_config": create_endpoint_config_request(spec, cfg),
        "alarm_errors": alarms[0],
        "alarm_latency": alarms[1],
        "create_candidate_config": create_candidate_config_request(spec, cfg),
        "create_candidate_endpoint": create_candidate_endpoint_request(spec),
        "describe_candidate_endpoint": {"EndpointName": spec.candidate_endpoint},
        "delete_candidate_endpoint": {"EndpointName": spec.candidate_endpoint},
        "create_endpoint": create_endpoint_request(spec),
        "update_endpoint": update_endpoint_request(spec, cfg),
        "revert_endpoint": revert_endpoint_request(spec.endpoint, previous_config or ""),
        "delete_endpoint": {"EndpointName": spec.endpoint},
        "describe_endpoint": {"EndpointName": spec.endpoint},
        "smoke": ({"EndpointName": smoke_on, "run_id": smoke_run_id or ""}
                  if smoke_payload else None),
        "scalable_target": scalable_target_request(spec, cfg),
        "scaling_policy": scaling_policy_request(spec, cfg),
        # Not the dashboards: their bodies grow with the stages and features shown (tens of
        # KB); the dashboards step builds and puts them (dashboard_requests).
    }


def retire_requests(project: str, stage: str,
                    other_endpoints: Sequence[str] = ()) -> dict[str, Any]:
    """What retiring ``stage`` of ``project`` deletes. ``other_endpoints``: the project's
    endpoints of other stages that still serve; the project's dashboards show every stage,
    so they are deleted only with the last endpoint."""
    endpoint = names.endpoint_name(project, stage)
    return {
        "endpoint": endpoint,
        "keep_dashboards": bool(other_endpoints),
        "other_endpoints": list(other_endpoints),
        "delete_endpoint": {"EndpointName": endpoint},
        "deregister_scalable_target": {
            "ServiceNamespace": "sagemaker", "ResourceId": names.scaling_resource_id(endpoint),
            "ScalableDimension": "sagemaker:variant:DesiredInstanceCount"},
        "delete_alarms": {"AlarmNames": list(names.alarm_names(endpoint))},
        "delete_dashboards": {"DashboardNames": [names.metrics_dashboard(project),
                                                 names.stats_dashboard(project)]},
    }


def deployment_request_fields(cfg: SageMakerConfig) -> dict[str, list[str]]:
    """The top-level fields of each request in :func:`deployment_requests`, by its key there.

    A Task state cannot hand an object on as a whole API request: its ``Parameters`` name each
    field (``"ModelName.$": "$.deploy.create_model.ModelName"``), and a Task without
    ``Parameters`` sends an empty request in moto while CDK always renders ``Parameters: {}``.
    The state machine definitions are therefore written from this function, which runs the
    very builders above, so the field lists cannot drift from the requests."""
    sample_cfg = replace(cfg, stages={"sample": StageConfig()})
    spec = DeploymentSpec(project="sample", stage="sample", version="1", endpoint="sample-sample",
                          model_name="m", config_name="c", model_data_uri="s3://b/m/",
                          token="t", candidate_endpoint="sample-sample--t",
                          candidate_config_name="cc")
    payload = {"dataframe_split": {"columns": ["a"], "data": [[1.0]]}}
    requests = deployment_requests(spec, sample_cfg, payload, previous_config="old")
    fields: dict[str, list[str]] = {}
    for name, request in requests.items():
        if isinstance(request, dict) and name not in ("spec", "smoke"):
            fields[name] = sorted(request)
    return fields


def retire_request_fields() -> dict[str, list[str]]:
    """As :func:`deployment_request_fields`, for :func:`retire_requests`."""
    return {name: sorted(request) for name, request in retire_requests("p", "s").items()
            if isinstance(request, dict)}


def endpoint_summaries(sagemaker: Any, name_contains: str) -> list[dict[str, Any]]:
    """Summaries of the endpoints whose name contains ``name_contains``, every page."""
    found: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"NameContains": name_contains, "MaxResults": 100}
    while True:
        page = sagemaker.list_endpoints(**kwargs)
        found.extend(page.get("Endpoints", []))
        if not page.get("NextToken"):
            return found
        kwargs["NextToken"] = page["NextToken"]


def other_stage_endpoints(sagemaker: Any, stages: Iterable[str], project: str,
                          stage: str) -> list[str]:
    """The project's endpoints of its other stages that exist and are not being deleted:
    while there is one, retiring ``stage`` keeps the project's dashboards."""
    wanted = {names.endpoint_name(project, s) for s in stages if s != stage}
    if not wanted:
        return []
    return sorted(e["EndpointName"] for e in endpoint_summaries(sagemaker, f"{project}-")
                  if e["EndpointName"] in wanted and e["EndpointStatus"] != "Deleting")


# --- the backend --------------------------------------------------------------------------
def _error_code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def is_missing(exc: Exception) -> bool:
    """SageMaker says 'Could not find ...' with a ValidationException for missing things."""
    message = str(exc)
    return _error_code(exc) in ("ValidationException", "ResourceNotFound",
                                "ObjectNotFoundException") and (
        "Could not find" in message or "does not exist" in message or "not found" in message)


_missing = is_missing


@dataclass
class EndpointOperation:
    """A create or update in flight: ``status()`` looks once, ``wait()`` until it ends."""

    sagemaker: Any
    endpoint: str
    config_name: str
    poll_s: float
    timeout_s: float
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def status(self) -> dict[str, Any]:
        return dict(self.sagemaker.describe_endpoint(EndpointName=self.endpoint))

    def wait(self) -> None:
        deadline = self.clock() + self.timeout_s
        while True:
            described = self.status()
            state = described["EndpointStatus"]
            if state == "InService":
                if described.get("EndpointConfigName") != self.config_name:
                    raise DeploymentFailed(
                        f"{self.endpoint} rolled back to {described.get('EndpointConfigName')}:"
                        f" {described.get('FailureReason') or 'an alarm fired during the update'}")
                return
            if state not in WAITING_STATES:
                raise DeploymentFailed(f"{self.endpoint} is {state}: "
                                       f"{described.get('FailureReason') or 'no reason given'}")
            if self.clock() > deadline:
                raise DeploymentFailed(f"{self.endpoint} still {state} after {self.timeout_s}s")
            self.sleep(self.poll_s)


def _wait_until_settled(sagemaker: Any, endpoint: str, poll_s: float, timeout_s: float,
                        sleep: Callable[[float], None], clock: Callable[[], float]) -> str:
    deadline = clock() + timeout_s
    while True:
        state = str(sagemaker.describe_endpoint(EndpointName=endpoint)["EndpointStatus"])
        if state not in WAITING_STATES or clock() > deadline:
            return state
        sleep(poll_s)


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, DeploymentFailed) else f"{type(exc).__name__}: {exc}"


def _deployment_failed(exc: Exception) -> DeploymentFailed:
    return exc if isinstance(exc, DeploymentFailed) else DeploymentFailed(_reason(exc))


class SageMakerBackend:
    """:class:`~mlops_control.steps.backend.Backend` on SageMaker real-time endpoints."""

    def __init__(self, *, sagemaker: Any, runtime: Any, cloudwatch: Any, autoscaling: Any,
                 config: SageMakerConfig, registry: RegistryClient | None = None,
                 poll_s: float = 30.0, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic,
                 token: Callable[[], str] | None = None) -> None:
        self.sagemaker = sagemaker
        self.runtime = runtime
        self.cloudwatch = cloudwatch
        self.autoscaling = autoscaling
        self.config = config
        self.registry = registry
        self.poll_s = poll_s
        self.sleep = sleep
        self.clock = clock
        # Names keep 8 token characters: the epoch second in hex tells deployments apart
        # (a date-time string would be cut to the hour).
        self.token = token or (lambda: f"{int(time.time()):08x}")

    # --- live -----------------------------------------------------------------------------
    def live(self, project: str) -> dict[str, str]:
        live: dict[str, str] = {}
        for summary in self._endpoints(f"{project}-"):
            name, state = summary["EndpointName"], summary["EndpointStatus"]
            stage = name.removeprefix(f"{project}-")
            if not name.startswith(f"{project}-") or not names.STAGE_PATTERN.match(stage):
                continue
            if state not in SERVING_STATES:
                continue
            tags = self._config_tags(self.current_config(name) or "")
            # Only endpoints this control centre made for this very project count.
            if tags.get(names.SM_TAG_PROJECT) == project and names.SM_TAG_VERSION in tags:
                live[stage] = tags[names.SM_TAG_VERSION]
        return live

    def _endpoints(self, name_contains: str) -> list[dict[str, Any]]:
        return endpoint_summaries(self.sagemaker, name_contains)

    def current_config(self, endpoint: str) -> str | None:
        """The config that serves ``endpoint`` now, or None when there is no endpoint."""
        try:
            described = self.sagemaker.describe_endpoint(EndpointName=endpoint)
        except Exception as exc:
            if _missing(exc):
                return None
            raise
        return str(described["EndpointConfigName"])

    def _config_tags(self, config_name: str) -> dict[str, str]:
        if not config_name:
            return {}
        try:
            arn = self.sagemaker.describe_endpoint_config(
                EndpointConfigName=config_name)["EndpointConfigArn"]
        except Exception as exc:
            if _missing(exc):
                return {}
            raise
        tags = self.sagemaker.list_tags(ResourceArn=arn, MaxResults=50).get("Tags", [])
        return {t["Key"]: t["Value"] for t in tags}

    # --- deploy ---------------------------------------------------------------------------
    def spec_for(self, target: DeployTarget) -> DeploymentSpec:
        if self.registry is None:
            raise ControlCentreError("the SageMaker backend needs a registry client to deploy")
        source = self.registry.download_uri(target.project, target.version)
        return DeploymentSpec.create(
            target, model_data_uri(source, self.config.artifacts_destination), self.token())

    def deploy(self, target: DeployTarget) -> None:
        """See the module doc: a replacement is smoke-tested on a candidate endpoint before
        the live endpoint sends it traffic; every failure leaves the previous version serving
        and raises :class:`DeploymentFailed` once it does."""
        spec = self.spec_for(target)
        cfg = self.config
        try:
            previous = self.current_config(spec.endpoint)
            self.delete_candidates(spec.endpoint)  # left behind by a deployment that died
            self.sagemaker.create_model(**create_model_request(spec, cfg))
            self.sagemaker.create_endpoint_config(**create_endpoint_config_request(spec, cfg))
            for alarm in alarm_requests(spec.endpoint, cfg):
                self.cloudwatch.put_metric_alarm(**alarm)
            if previous is not None and target.smoke_payload:
                self.smoke_test_candidate(spec, target.smoke_payload)
        except Exception as exc:
            raise _deployment_failed(exc) from exc
        if previous is None:
            self._first_deployment(spec, target.smoke_payload)
        else:
            self._replace(spec, target.smoke_payload, previous)

    def _first_deployment(self, spec: DeploymentSpec, payload: Mapping[str, Any] | None
                          ) -> None:
        """Nothing served before: create the endpoint, smoke-test it, delete it on failure."""
        try:
            self.sagemaker.create_endpoint(**create_endpoint_request(spec))
            self._operation(spec.endpoint, spec.config_name).wait()
            if payload:
                self.smoke_test(spec.endpoint, payload)
            self._finish(spec, payload)
        except Exception as exc:
            self._undo(exc, spec.endpoint, lambda: self._delete_endpoint(spec.endpoint))

    def _replace(self, spec: DeploymentSpec, payload: Mapping[str, Any] | None,
                 previous: str) -> None:
        """The version passed its smoke test (``smoke_test_candidate``): blue/green update of the
        live endpoint, rolled back by SageMaker if an alarm fires; a failure after the switch
        puts ``previous`` back."""
        try:
            self.sagemaker.update_endpoint(**update_endpoint_request(spec, self.config))
            self._operation(spec.endpoint, spec.config_name).wait()
            self._finish(spec, payload)
        except Exception as exc:
            self._undo(exc, spec.endpoint, lambda: self._restore(spec.endpoint, previous))

    def smoke_test_candidate(self, spec: DeploymentSpec, payload: Mapping[str, Any]) -> int:
        """Smoke-test the new version on its candidate endpoint, which no client knows, while
        the live endpoint goes on serving the previous version; the candidate is deleted
        whatever the outcome. Returns the number of predictions."""
        self.sagemaker.create_endpoint_config(
            **create_candidate_config_request(spec, self.config))
        candidate = spec.candidate_endpoint
        try:
            self.sagemaker.create_endpoint(**create_candidate_endpoint_request(spec))
            self._operation(candidate, spec.candidate_config_name).wait()
            predictions = self.smoke_test(candidate, payload)
        except Exception as exc:
            self._undo(exc, candidate, lambda: self._delete_endpoint(candidate))
        try:
            self._delete_endpoint(candidate)
        except Exception as exc:
            # The version passed; a candidate left behind is deleted by the next deployment
            # of this endpoint, or by retire. Not a reason to keep the old version.
            logger.warning("candidate endpoint not deleted",
                           extra={"endpoint": candidate, "error": _reason(exc)})
        return predictions

    def _finish(self, spec: DeploymentSpec, payload: Mapping[str, Any] | None) -> None:
        cfg = self.config
        self.autoscaling.register_scalable_target(**scalable_target_request(spec, cfg))
        self.autoscaling.put_scaling_policy(**scaling_policy_request(spec, cfg))
        for request in dashboard_requests(spec, cfg, features_of(payload)):
            self.cloudwatch.put_dashboard(**request)

    def _operation(self, endpoint: str, config_name: str) -> EndpointOperation:
        return EndpointOperation(self.sagemaker, endpoint, config_name, self.poll_s,
                                 self.config.max_update_s, self.sleep, self.clock)

    def smoke_test(self, endpoint: str, payload: Mapping[str, Any]) -> int:
        try:
            answer = self.runtime.invoke_endpoint(**smoke_request(endpoint, payload))
        except Exception as exc:
            raise DeploymentFailed(f"smoke test: {endpoint} refused the test slice: {exc}"
                                   ) from None
        return check_smoke_response(answer["Body"].read(), expected_rows(payload))

    def _undo(self, exc: Exception, endpoint: str, undo: Callable[[], None]) -> NoReturn:
        """Undo what a failed deployment changed, then raise its reason; if undoing fails
        too, say so rather than claim the previous version serves."""
        try:
            undo()
        except Exception as undo_exc:
            raise DeploymentFailed(
                f"{_reason(exc)}; undoing it failed too ({_reason(undo_exc)}): check "
                f"{endpoint} in SageMaker") from exc
        raise _deployment_failed(exc) from exc

    def _restore(self, endpoint: str, previous: str) -> None:
        """Put ``previous`` back on ``endpoint`` and wait until it serves again (nothing to
        do when SageMaker already rolled the update back)."""
        described = self.sagemaker.describe_endpoint(EndpointName=endpoint)
        if (described["EndpointStatus"] == "InService"
                and described["EndpointConfigName"] == previous):
            return
        if described["EndpointStatus"] in WAITING_STATES:
            # An update still in flight (a timeout): SageMaker refuses another until it ends.
            _wait_until_settled(self.sagemaker, endpoint, self.poll_s,
                                self.config.max_update_s, self.sleep, self.clock)
            if self.current_config(endpoint) == previous:
                return
        self.sagemaker.update_endpoint(**revert_endpoint_request(endpoint, previous))
        self._operation(endpoint, previous).wait()

    def _delete_endpoint(self, endpoint: str) -> None:
        try:
            self.sagemaker.delete_endpoint(EndpointName=endpoint)
        except Exception as exc:
            if not _missing(exc):
                raise

    def candidate_endpoints(self, endpoint: str) -> list[str]:
        """``endpoint``'s candidate endpoints that exist and are not being deleted."""
        prefix = names.candidate_endpoint_prefix(endpoint)
        return [e["EndpointName"] for e in self._endpoints(prefix)
                if e["EndpointName"].startswith(prefix) and e["EndpointStatus"] != "Deleting"]

    def delete_candidates(self, endpoint: str) -> list[str]:
        """Delete ``endpoint``'s candidate endpoints (a deployment deletes its own; this
        catches one whose deployment was stopped). Returns their names."""
        candidates = self.candidate_endpoints(endpoint)
        for name in candidates:
            self._delete_endpoint(name)
        return candidates

    # --- retire ---------------------------------------------------------------------------
    def other_stage_endpoints(self, project: str, stage: str) -> list[str]:
        return other_stage_endpoints(self.sagemaker, self.config.stages, project, stage)

    def retire(self, project: str, stage: str) -> None:
        requests = retire_requests(project, stage, self.other_stage_endpoints(project, stage))
        endpoint = requests["endpoint"]
        try:
            self.sagemaker.delete_endpoint(**requests["delete_endpoint"])
        except Exception as exc:
            if not _missing(exc):
                raise
        try:
            self.autoscaling.deregister_scalable_target(**requests["deregister_scalable_target"])
        except Exception as exc:
            if _error_code(exc) != "ObjectNotFoundException":
                raise
        self.cloudwatch.delete_alarms(**requests["delete_alarms"])
        if not requests["keep_dashboards"]:
            self.cloudwatch.delete_dashboards(**requests["delete_dashboards"])
        self.delete_candidates(endpoint)
        self.delete_configs_and_models(endpoint)

    def delete_configs_and_models(self, endpoint: str) -> list[str]:
        """Every endpoint config (and its model) made for ``endpoint``; returns their names."""
        deleted: list[str] = []
        kwargs: dict[str, Any] = {"NameContains": f"{endpoint}-v", "MaxResults": 100}
        while True:
            page = self.sagemaker.list_endpoint_configs(**kwargs)
            for summary in page.get("EndpointConfigs", []):
                arn = summary["EndpointConfigArn"]
                tags = {t["Key"]: t["Value"] for t in
                        self.sagemaker.list_tags(ResourceArn=arn, MaxResults=50).get("Tags", [])}
                if tags.get(names.SM_TAG_ENDPOINT) != endpoint:
                    continue
                name = summary["EndpointConfigName"]
                self.sagemaker.delete_endpoint_config(EndpointConfigName=name)
                try:
                    self.sagemaker.delete_model(ModelName=name)
                except Exception as exc:
                    if not _missing(exc):
                        raise
                deleted.append(name)
            if not page.get("NextToken"):
                return deleted
            kwargs["NextToken"] = page["NextToken"]
