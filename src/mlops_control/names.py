"""Every name shared by the runtime, the Lambdas, the CDK app and the tests.

One module so that a tag key, an environment variable or a construct id is spelled once.
"""

from __future__ import annotations

import re
from enum import StrEnum

# --- Registry tags written by people (MLflow UI, CLI, CI) ---------------------------------
TAG_DEPLOY = "deploy"
"""``deploy=<stage>`` on a model version: make it the live version of ``<project>-<stage>``."""
TAG_DEPRECATED = "deprecated"
"""``deprecated=true``: the version may no longer serve."""

# --- Registry tags written by the control centre (never by hand) --------------------------
TAG_STATUS = "deployment.status"
TAG_ENDPOINT = "deployment.endpoint"
TAG_MESSAGE = "deployment.message"
TAG_UPDATED_AT = "deployment.updated_at"

TAG_LINEAGE_TRIGGER = "lineage.trigger"
TAG_LINEAGE_DATA_LOCATION = "lineage.data_location"
TAG_LINEAGE_DATA_VERSION = "lineage.data_version"
TAG_LINEAGE_TRAINING_JOB = "lineage.training_job"
TAG_LINEAGE_CODE_REVISION = "lineage.code_revision"
# Set instead of data_location/data_version when the run shows no sign of reading the data it
# was given (no dataset input or param naming it, no file under it opened): the location.
TAG_LINEAGE_DATA_NOT_READ = "lineage.data_not_read"
TAG_PROMOTION = "lineage.promotion"
"""Why the promotion gate did or did not tag a freshly trained version."""



def stage_status_tag(stage: str) -> str:
    """``deployment.<stage>.status``: what last happened to a version on ``<project>-<stage>``
    (deploying, in_service, failed, superseded, rolled_back, retired; ``refused`` when it was
    asked for and never tried). Written only by work on that stage's endpoint, so a refusal or
    a deployment on another stage never erases it: rollbacks are decided from it."""
    return f"deployment.{stage}.status"


def stage_updated_at_tag(stage: str) -> str:
    """``deployment.<stage>.updated_at``: when :func:`stage_status_tag` was last written."""
    return f"deployment.{stage}.updated_at"


STAGE_REFUSED = "refused"
"""The per-stage record of a version asked for a stage and never tried there (another version
won): it keeps an older record from the general tags from being read as a past deployment."""

STAGE_ALIASES = {"champion": "production", "challenger": "staging"}
"""MLflow aliases that name a stage without being spelled like it. An alias spelled like a
configured stage (``@staging``, ``@production``) names that stage too."""

CONTROL_TAG_PREFIXES = ("deployment.", "lineage.")
"""Tags under these prefixes are the control centre's own writes; events about them are ignored
so that writing a status never triggers another round of work."""

TRUE_VALUES = frozenset({"true", "1", "yes"})


class Status(StrEnum):
    """Values of ``deployment.status``."""

    DEPLOYING = "deploying"
    IN_SERVICE = "in_service"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    SUPERSEDED = "superseded"
    RETIRED = "retired"


class Trigger(StrEnum):
    """Values of ``lineage.trigger``: what started a training run."""

    MANUAL = "manual"
    NEW_DATA = "new_data"
    SCHEDULE = "schedule"


# --- Naming rules -------------------------------------------------------------------------
# Project names become registered-model names, folder names, endpoint names and S3 prefixes,
# so they are held to the strictest of those: SageMaker endpoint names (63 chars, [a-zA-Z0-9-]).
PROJECT_NAME_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$")
STAGE_PATTERN = re.compile(r"^[a-z][a-z0-9]{0,14}$")


def endpoint_name(project: str, stage: str) -> str:
    """The endpoint that serves ``project`` at ``stage``: ``<project>-<stage>``."""
    return f"{project}-{stage}"


def metrics_dashboard(project: str) -> str:
    return f"{project}_metrics"


def stats_dashboard(project: str) -> str:
    return f"{project}_stats"


# --- Environment variables ----------------------------------------------------------------
ENV_TRACKING_URI = "MLFLOW_TRACKING_URI"
ENV_TEST_ENV = "TEST_ENV"
ENV_DATA_LOCATION = "MLOPS_DATA_LOCATION"
ENV_ML_ROOT = "MLOPS_ML_ROOT"
ENV_STATE_DIR = "MLOPS_STATE_DIR"
ENV_PROJECTS_DIR = "MLOPS_PROJECTS_DIR"
ENV_ENV_MANAGER = "MLOPS_ENV_MANAGER"
ENV_WEBHOOK_SECRET = "MLOPS_WEBHOOK_SECRET"
ENV_CODE_REVISION = "MLOPS_CODE_REVISION"
ENV_TRIGGER = "MLOPS_TRIGGER"
ENV_TRAINING_JOB = "MLOPS_TRAINING_JOB"
ENV_MODEL_NAME = "MLOPS_MODEL_NAME"
"""Registered name of the model a serving process starts with (for /version and logs)."""
ENV_MODEL_VERSION = "MLOPS_MODEL_VERSION"
ENV_SERVING_MAX_BODY_BYTES = "MLOPS_SERVING_MAX_BODY_BYTES"
"""Largest request body the scoring server reads (413 beyond); SageMaker's limit by default."""
ENV_SERVING_HEADERLESS_CSV = "MLOPS_SERVING_HEADERLESS_CSV"
"""Set (to 1) by Batch Transform: CSV bodies may lack a header (line-split mini-batches)."""
ENV_SERVING_KEEPALIVE_S = "MLOPS_SERVING_KEEPALIVE_S"
"""Seconds an idle kept-alive connection stays open."""
ENV_SERVING_MAX_BATCH_ROWS = "MLOPS_SERVING_MAX_BATCH_ROWS"
"""Most rows coalesced into one predict call (a larger single request is never split)."""
ENV_SERVING_SHUTDOWN_TIMEOUT_S = "MLOPS_SERVING_SHUTDOWN_TIMEOUT_S"
"""Seconds a stopping server waits for in-flight requests before closing connections."""
ENV_SERVING_OBSERVER = "MLOPS_SERVING_OBSERVER"
"""``package.module:name`` of the monitoring observer told about every batch (none by default)."""
ENV_METRICS_STORE = "MLOPS_METRICS_STORE"
"""SQLite file in which a local endpoint records its metrics (``<state>/metrics/metrics.sqlite``
when the control centre starts it); see :mod:`mlops_control.monitoring.observer`."""
ENV_ENDPOINT_NAME = "MLOPS_ENDPOINT_NAME"
"""The endpoint a local serving process answers for: its metrics are recorded under this name."""
ENV_METRICS_FLUSH_S = "MLOPS_METRICS_FLUSH_S"
"""Seconds between two writes of a serving worker's in-memory metrics to the store (5)."""
METRICS_OBSERVER = "mlops_control.monitoring.observer:MetricsObserver"
"""The observer local endpoints run with (the value of ``MLOPS_SERVING_OBSERVER``)."""
ENV_SAGEMAKER_WORKERS = "SAGEMAKER_MODEL_SERVER_WORKERS"
"""SageMaker's conventional setting for the number of serving worker processes."""

# --- The SageMaker bring-your-own-container contract --------------------------------------
DEFAULT_ML_ROOT = "/opt/ml"
TRAINING_CHANNEL = "training"
SERVING_PORT_IN_CONTAINER = 8080

# --- Local defaults -----------------------------------------------------------------------
DEFAULT_MLFLOW_PORT = 5000
DEFAULT_RECEIVER_PORT = 5080
STAGE_PORTS = {"production": 5050, "staging": 5051}
"""Local endpoint ports per stage. Other stages get the next free port from 5052 upwards."""
FIRST_EXTRA_STAGE_PORT = 5052

# --- Artifacts the training job stores with each run --------------------------------------
SMOKE_TEST_ARTIFACT = "control/smoke_test.json"
"""The contract's test slice as an MLflow scoring request: what deployments smoke-test with."""
TRAINING_STATS_ARTIFACT = "control/training_stats.json"
"""Per-feature statistics of the data a version was trained on (count, mean, std, min, max,
missing share, histogram for the population stability index): the reference for drift."""

# --- AWS: SageMaker resources, tags and metrics -------------------------------------------
# Every SageMaker resource the control centre creates carries these tags, so ``live()`` and
# ``retire`` find exactly ours and IAM policies can be scoped to them.
SM_TAG_PROJECT = "mlops:project"
SM_TAG_STAGE = "mlops:stage"
SM_TAG_VERSION = "mlops:version"
SM_TAG_ENDPOINT = "mlops:endpoint"
SM_VARIANT = "AllTraffic"
"""The one production variant of every endpoint config, whatever version it serves. The name
stays the same from version to version on purpose: a blue/green update with deployment
guardrails (auto-rollback on alarms) needs the new config to have the same variant name as the
old one, and the variant is also what the alarms, the autoscaling target and the dashboards
name. A new version is smoke-tested on a candidate endpoint of its own before the update
(:func:`candidate_endpoint_name`), not as a second variant of the live endpoint."""
SM_SERVING_ENV = "serve"
"""The command SageMaker passes to the shared image for an endpoint (BYOC contract)."""
STATS_NAMESPACE = "MLOpsControl/Stats"
"""CloudWatch namespace of the input/output statistics shown on ``<project>_stats``, published
from captured data by the capture-stats Lambda (catalogue: ``monitoring/catalogue.py``)."""
STATS_DIMENSIONS = ("Project", "Endpoint", "Feature")
ENDPOINT_DIMENSIONS = ("Project", "Endpoint")
STAT_FEATURE_VALUE = "FeatureValue"
"""A feature's values as a statistic set: its Average is the mean, SampleCount the rows."""
STAT_FEATURE_SPREAD = "FeatureStd"
STAT_FEATURE_MISSING = "FeatureMissingShare"
STAT_FEATURE_DRIFT = "FeatureDrift"
"""Population stability index of a feature against the training data."""
STAT_MAX_DRIFT = "MaxFeatureDrift"
"""The largest FeatureDrift of one endpoint (dimensions Project, Endpoint): what the drift
alarm watches."""
STAT_PREDICTION = "Prediction"
"""The predictions as a distribution (values and counts): percentiles over time."""
PREDICTION_FEATURE = "__prediction__"
"""The ``Feature`` dimension value under which prediction statistics are published."""

_SM_NAME_MAX = 63


def _token(token: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "", token)[:8] or "0"


def sagemaker_resource_name(endpoint: str, version: str, token: str, role: str = "") -> str:
    """The SageMaker model and endpoint-config name of one deployment of ``version`` to
    ``endpoint``: ``<endpoint>-v<version>-<token>`` within SageMaker's 63 characters. ``token``
    tells deployments of the same version apart (a redeploy after a failure); ``role`` names
    a second config of the same deployment (``candidate``: the smoke-test config)."""
    suffix = f"-v{version}-{_token(token)}" + (f"-{role}" if role else "")
    return f"{endpoint[: _SM_NAME_MAX - len(suffix)].rstrip('-')}{suffix}"


CANDIDATE_ROLE = "candidate"
_CANDIDATE_SEPARATOR = "--"
_CANDIDATE_STEM_MAX = _SM_NAME_MAX - len(_CANDIDATE_SEPARATOR) - 8


def candidate_endpoint_prefix(endpoint: str) -> str:
    """What the names of ``endpoint``'s candidate endpoints start with: ``<endpoint>--``
    (a long endpoint name is shortened, with a digest of the whole name so that two long
    endpoints sharing a prefix never share candidates).

    The doubled hyphen keeps a candidate apart from every live endpoint: a name
    ``<p>-<s>--<token>`` read as ``<project>-<stage>`` would need a project ending in ``-``,
    which :data:`PROJECT_NAME_PATTERN` refuses (upper case would not do: SageMaker compares
    endpoint names case-insensitively in CreateEndpoint)."""
    if len(endpoint) > _CANDIDATE_STEM_MAX:
        import hashlib

        digest = hashlib.sha256(endpoint.encode()).hexdigest()[:8]
        endpoint = f"{endpoint[: _CANDIDATE_STEM_MAX - 9].rstrip('-')}-{digest}"
    return f"{endpoint}{_CANDIDATE_SEPARATOR}"


def candidate_endpoint_name(endpoint: str, token: str) -> str:
    """The short-lived endpoint on which one deployment smoke-tests its new version before
    ``endpoint`` sends it any traffic: ``<endpoint>--<token>``. One per deployment (the token
    is the deployment's), so a candidate left behind by a deployment that died never blocks
    the next one, which deletes it (see :func:`candidate_endpoint_prefix`)."""
    return f"{candidate_endpoint_prefix(endpoint)}{_token(token)}"


def alarm_names(endpoint: str) -> tuple[str, str]:
    """The CloudWatch alarms that roll a blue/green update back: 5xx errors, then latency."""
    return f"{endpoint}-5xx-errors", f"{endpoint}-model-latency"


def drift_alarm_name(endpoint: str) -> str:
    """The CloudWatch alarm on the endpoint's largest feature drift (made by the CDK app)."""
    return f"{endpoint}-feature-drift"


def scaling_resource_id(endpoint: str, variant: str = SM_VARIANT) -> str:
    """Application Auto Scaling's id of an endpoint variant."""
    return f"endpoint/{endpoint}/variant/{variant}"


def training_job_name(project: str, event_id: str) -> str:
    """A training job name derived from the event that asked for it (63 chars, unique per
    event: SageMaker refuses a second job of the same name, so a replayed event trains once)."""
    import hashlib

    digest = hashlib.sha256(f"{project}\x1f{event_id}".encode()).hexdigest()[:16]
    return f"{project[: _SM_NAME_MAX - 17].rstrip('-')}-{digest}"


# --- AWS: environment variables of the Lambdas and the shared image -----------------------
ENV_DEPLOY_STATE_MACHINE = "MLOPS_DEPLOY_STATE_MACHINE_ARN"
ENV_RETIRE_STATE_MACHINE = "MLOPS_RETIRE_STATE_MACHINE_ARN"
ENV_TRAIN_STATE_MACHINE = "MLOPS_TRAIN_STATE_MACHINE_ARN"
ENV_WEBHOOK_SECRET_ARN = "MLOPS_WEBHOOK_SECRET_ARN"
ENV_MLFLOW_AUTH_SECRET_ARN = "MLOPS_MLFLOW_AUTH_SECRET_ARN"
"""A Secrets Manager secret ``{"username": ..., "password": ...}`` for MLflow basic auth."""
ENV_STAGES = "MLOPS_STAGES"
ENV_PROJECTS = "MLOPS_PROJECTS"
ENV_DATA_PREFIX = "MLOPS_DATA_PREFIX"
ENV_DATA_BUCKET = "MLOPS_DATA_BUCKET"
ENV_ARTIFACTS_DESTINATION = "MLOPS_ARTIFACTS_DESTINATION"
"""Where the MLflow server proxies ``mlflow-artifacts:/`` to (``s3://bucket/prefix``)."""
ENV_CAPTURE_URI = "MLOPS_CAPTURE_URI"
ENV_CAPTURE_PREFIX = "MLOPS_CAPTURE_PREFIX"
"""Key prefix (in the artifact bucket) under which endpoints write captured requests."""
ENV_STAGE_SETTINGS = "MLOPS_STAGE_SETTINGS"
ENV_ALARM_SETTINGS = "MLOPS_ALARM_SETTINGS"
ENV_NOTIFY_TOPIC = "MLOPS_NOTIFY_TOPIC_ARN"

# --- AWS: CDK construct ids and stack outputs ---------------------------------------------
STACK_CONTROL = "MlopsControl"
STACK_MLFLOW = "MlopsMlflow"
OUTPUT_WEBHOOK_URL = "WebhookUrl"
OUTPUT_DATA_BUCKET = "DataBucketName"
OUTPUT_ARTIFACT_BUCKET = "ArtifactBucketName"
OUTPUT_DEPLOY_STATE_MACHINE = "DeployStateMachineArn"
OUTPUT_RETIRE_STATE_MACHINE = "RetireStateMachineArn"
OUTPUT_TRAIN_STATE_MACHINE = "TrainStateMachineArn"
OUTPUT_IMAGE_URI = "SharedImageUri"
OUTPUT_SAGEMAKER_ROLE = "SageMakerRoleArn"
OUTPUT_NOTIFY_TOPIC = "NotifyTopicArn"
OUTPUT_WEBHOOK_SECRET = "WebhookSecretArn"
OUTPUT_MLFLOW_URL = "MlflowUrl"
OUTPUT_TRACKING_URI = "MlflowTrackingUri"
"""The MLflow server the control plane uses (the remote CLI's default)."""
OUTPUT_MLFLOW_AUTH_SECRET = "MlflowAuthSecretArn"
"""The secret ``{"username", "password"}`` the remote CLI signs in to MLflow with."""
OUTPUT_ARTIFACTS_DESTINATION = "ArtifactsDestination"
"""Where MLflow keeps ``mlflow-artifacts:/`` in S3 (to find model data for SageMaker)."""
OUTPUT_DATA_PREFIX = "DataPrefix"
"""Training data lands under ``s3://<data bucket>/<prefix>/<project>/``."""
