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
TAG_PROMOTION = "lineage.promotion"
"""Why the promotion gate did or did not tag a freshly trained version."""

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
ENV_SERVING_KEEPALIVE_S = "MLOPS_SERVING_KEEPALIVE_S"
"""Seconds an idle kept-alive connection stays open."""
ENV_SERVING_MAX_BATCH_ROWS = "MLOPS_SERVING_MAX_BATCH_ROWS"
"""Most rows coalesced into one predict call (a larger single request is never split)."""
ENV_SERVING_SHUTDOWN_TIMEOUT_S = "MLOPS_SERVING_SHUTDOWN_TIMEOUT_S"
"""Seconds a stopping server waits for in-flight requests before closing connections."""
ENV_SERVING_OBSERVER = "MLOPS_SERVING_OBSERVER"
"""``package.module:name`` of the monitoring observer told about every batch (none by default)."""
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
