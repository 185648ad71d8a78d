"""``mlops remote batch-inference``: SageMaker Batch Transform over CSV files in S3, with the
shared image in serve mode (the same container that serves the endpoints).

Files of any size are split by line (``SplitType=Line``, ``BatchStrategy=MultiRecord``) into
mini-batches of at most ``MAX_PAYLOAD_MB``; only the first mini-batch of a file holds its header
line, so the container is told (``MLOPS_SERVING_HEADERLESS_CSV``) to read a CSV whose first line
names none of the model's columns as rows in the signature's column order. Its body limit is
raised to SageMaker's maximum (100 MB) for the job, so whatever SageMaker sends is taken. Each
``<name>.csv`` yields ``<output>/<name>.csv.out``: one ``{"predictions": [...]}`` line per
mini-batch, in order (``AssembleWith=Line``). Models need a signature (column names or a
tensor) to be scored header-less.

Batch Transform refuses models whose container uses ``ModelDataSource`` (the uncompressed S3
prefix the endpoints use), so the job's model points ``ModelDataUrl`` at a ``model.tar.gz``:
the SageMaker training job's output when the version was trained remotely (its
``lineage.training_job`` tag), otherwise the version's MLflow artifacts packed once into
``<artifacts>.tar.gz`` beside that folder (not in it: the endpoints copy the whole folder
into /opt/ml/model, and would copy the tarball too) and reused by later jobs. The SageMaker
model made for the job is deleted when the job ends (``wait``), so nothing is left running or
billed.
"""

from __future__ import annotations

import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlops_control import names
from mlops_control.backends import sagemaker as sm
from mlops_control.errors import ControlCentreError
from mlops_control.registry import RegistryClient
from mlops_control.remote.jobs import wait_for_job

MAX_PAYLOAD_MB = 6
"""Per mini-batch: SageMaker's default and recommended size. A line larger than this fails the
job (SageMaker never cuts a record)."""
CONTAINER_MAX_BODY_BYTES = 100 * 1024 * 1024
"""SageMaker's MaxPayloadInMB ceiling: the container takes any body the service may send."""
PACKED_SUFFIX = ".tar.gz"
"""Of the tarball beside a model's folder: ``.../artifacts/`` is packed into
``.../artifacts.tar.gz``."""


@dataclass(frozen=True)
class BatchJob:
    job_name: str
    model_name: str
    input_uri: str
    output_uri: str


def job_names(project: str, version: str, token: str) -> tuple[str, str]:
    """(job name, model name): ``<project>-batch-v<version>-<token>`` within 63 characters."""
    name = names.sagemaker_resource_name(f"{project}-batch", version, token)
    return name, name


def transform_job_request(job: BatchJob, *, instance_type: str, instance_count: int,
                          project: str, version: str) -> dict[str, Any]:
    return {
        "TransformJobName": job.job_name,
        "ModelName": job.model_name,
        "BatchStrategy": "MultiRecord",
        "MaxConcurrentTransforms": 1,
        "MaxPayloadInMB": MAX_PAYLOAD_MB,
        "Environment": {names.ENV_SERVING_MAX_BODY_BYTES: str(CONTAINER_MAX_BODY_BYTES),
                        names.ENV_SERVING_HEADERLESS_CSV: "1"},
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": job.input_uri}},
            "ContentType": "text/csv",
            "CompressionType": "None",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": job.output_uri, "Accept": "application/json",
                            "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": instance_type, "InstanceCount": instance_count},
        "Tags": [{"Key": names.SM_TAG_PROJECT, "Value": project},
                 {"Key": names.SM_TAG_VERSION, "Value": version}],
    }


@dataclass
class TransformOperation:
    """A transform job in flight: ``status()`` looks once, ``wait()`` until it ends."""

    sagemaker: Any
    job: BatchJob
    poll_s: float = 30.0
    timeout_s: float = 6 * 3600.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def status(self) -> dict[str, Any]:
        return dict(self.sagemaker.describe_transform_job(TransformJobName=self.job.job_name))

    def wait(self, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
        return wait_for_job(self.status, "TransformJobStatus",
                            f"transform job {self.job.job_name}", poll_s=self.poll_s,
                            timeout_s=self.timeout_s, sleep=self.sleep, clock=self.clock,
                            progress=progress)


def packed_model_url(*, sagemaker: Any, s3: Any | None, registry: RegistryClient,
                     config: sm.SageMakerConfig, project: str, version: str) -> str:
    """The ``s3://.../model.tar.gz`` of a version's MLflow model (see the module docstring)."""
    tags = registry.get_model_version(project, version).tags
    job = tags.get(names.TAG_LINEAGE_TRAINING_JOB, "")
    if job and job != "local":
        try:
            described = sagemaker.describe_training_job(TrainingJobName=job)
        except Exception as exc:  # no such job (trained in another account, or long gone)
            if _code(exc) not in ("ValidationException", "ResourceNotFound"):
                raise
        else:
            url = described.get("ModelArtifacts", {}).get("S3ModelArtifacts")
            if described.get("TrainingJobStatus") == "Completed" and url:
                return str(url)
    prefix = sm.model_data_uri(registry.download_uri(project, version),
                               config.artifacts_destination)
    if s3 is None:
        import boto3

        s3 = boto3.client("s3", region_name=config.region)
    return pack_prefix(s3, prefix)


def pack_prefix(s3: Any, prefix: str) -> str:
    """Pack the files under an ``s3://`` prefix (a folder, ``.../artifacts/``) into
    ``.../artifacts.tar.gz`` beside it (their paths relative to the prefix, so it unpacks
    into /opt/ml/model as the folder was), once: a tarball already there is reused. Streams
    through a temporary file, not memory."""
    bucket, _, key_prefix = prefix.removeprefix("s3://").partition("/")
    if not key_prefix.strip("/"):
        raise ControlCentreError(f"{prefix} is a whole bucket, not a model's folder")
    packed_key = key_prefix.rstrip("/") + PACKED_SUFFIX
    try:
        s3.head_object(Bucket=bucket, Key=packed_key)
        return f"s3://{bucket}/{packed_key}"
    except Exception as exc:
        if _code(exc) not in ("404", "NoSuchKey", "NotFound"):
            raise
    keys = [o["Key"] for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=key_prefix) for o in page.get("Contents", [])
        if not o["Key"].endswith("/")]
    if not any(k[len(key_prefix):] == "MLmodel" for k in keys):
        raise ControlCentreError(f"{prefix} holds no MLmodel file: it is not an MLflow model")
    with tempfile.TemporaryDirectory() as tmp:
        archive = f"{tmp}/model{PACKED_SUFFIX}"
        with tarfile.open(archive, "w:gz") as tar:
            for key in keys:
                local = f"{tmp}/part"
                s3.download_file(bucket, key, local)
                tar.add(local, arcname=key[len(key_prefix):])
        s3.upload_file(archive, bucket, packed_key)
    return f"s3://{bucket}/{packed_key}"


def _code(exc: Exception) -> str:
    return str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))


def create_model_request(spec: sm.DeploymentSpec, config: sm.SageMakerConfig,
                         model_data_url: str) -> dict[str, Any]:
    """The endpoints' CreateModel request with ``ModelDataUrl`` (a model.tar.gz) instead of
    ``ModelDataSource``, which Batch Transform does not take."""
    request = sm.create_model_request(spec, config)
    container = dict(request["PrimaryContainer"])
    container.pop("ModelDataSource", None)
    container["ModelDataUrl"] = model_data_url
    return {**request, "PrimaryContainer": container}


def start(*, sagemaker: Any, registry: RegistryClient, config: sm.SageMakerConfig,
          project: str, version: str, input_uri: str, output_uri: str, token: str,
          instance_type: str = "ml.m5.large", instance_count: int = 1,
          s3: Any | None = None) -> TransformOperation:
    """Make a SageMaker model of the version (from a model.tar.gz, see
    :func:`packed_model_url`) and start the transform job."""
    for uri in (input_uri, output_uri):
        if not uri.startswith("s3://"):
            raise ControlCentreError(f"{uri!r} is not an s3:// location")
    job_name, model_name = job_names(project, version, token)
    model_data = packed_model_url(sagemaker=sagemaker, s3=s3, registry=registry,
                                  config=config, project=project, version=version)
    spec = sm.DeploymentSpec(project=project, stage="batch", version=version,
                             endpoint=f"{project}-batch", model_name=model_name,
                             config_name=model_name, model_data_uri=model_data, token=token)
    job = BatchJob(job_name=job_name, model_name=model_name, input_uri=input_uri,
                   output_uri=output_uri.rstrip("/") + f"/{job_name}/")
    sagemaker.create_model(**create_model_request(spec, config, model_data))
    try:
        sagemaker.create_transform_job(**transform_job_request(
            job, instance_type=instance_type, instance_count=instance_count, project=project,
            version=version))
    except Exception:
        sagemaker.delete_model(ModelName=model_name)  # nothing half-made is left behind
        raise
    return TransformOperation(sagemaker, job)


def outputs_written(s3: Any, output_uri: str) -> list[str]:
    """The ``s3://`` locations of the files the job wrote."""
    bucket, _, prefix = output_uri.removeprefix("s3://").partition("/")
    found: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        found.extend(f"s3://{bucket}/{o['Key']}" for o in page.get("Contents", []))
    return found
