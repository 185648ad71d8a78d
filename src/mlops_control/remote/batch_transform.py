"""``mlops remote batch-inference``: SageMaker Batch Transform over CSV files in S3, with the
shared image in serve mode (the same container that serves the endpoints).

The scoring server reads CSV with a header row, so each input file is sent whole as one request
(``SplitType=None``): one file per request, at most ``MAX_PAYLOAD_MB`` (SageMaker's limit is
100 MB; split larger files). Each ``<name>.csv`` yields ``<output>/<name>.csv.out`` holding the
JSON answer ``{"predictions": [...]}``. The SageMaker model made for the job is deleted when the
job ends (``wait``), so nothing is left running or billed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mlops_control import names
from mlops_control.backends import sagemaker as sm
from mlops_control.errors import ControlCentreError
from mlops_control.registry import RegistryClient
from mlops_control.remote.jobs import wait_for_job

MAX_PAYLOAD_MB = 100


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
        "BatchStrategy": "SingleRecord",
        "MaxConcurrentTransforms": 1,
        "MaxPayloadInMB": MAX_PAYLOAD_MB,
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": job.input_uri}},
            "ContentType": "text/csv",
            "CompressionType": "None",
            "SplitType": "None",
        },
        "TransformOutput": {"S3OutputPath": job.output_uri, "Accept": "application/json",
                            "AssembleWith": "None"},
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


def start(*, sagemaker: Any, registry: RegistryClient, config: sm.SageMakerConfig,
          project: str, version: str, input_uri: str, output_uri: str, token: str,
          instance_type: str = "ml.m5.large", instance_count: int = 1) -> TransformOperation:
    """Make a SageMaker model of the version (model data straight from MLflow's artifacts,
    as the endpoints do) and start the transform job."""
    for uri in (input_uri, output_uri):
        if not uri.startswith("s3://"):
            raise ControlCentreError(f"{uri!r} is not an s3:// location")
    job_name, model_name = job_names(project, version, token)
    model_data = sm.model_data_uri(registry.download_uri(project, version),
                                   config.artifacts_destination)
    spec = sm.DeploymentSpec(project=project, stage="batch", version=version,
                             endpoint=f"{project}-batch", model_name=model_name,
                             config_name=model_name, model_data_uri=model_data, token=token)
    job = BatchJob(job_name=job_name, model_name=model_name, input_uri=input_uri,
                   output_uri=output_uri.rstrip("/") + f"/{job_name}/")
    sagemaker.create_model(**sm.create_model_request(spec, config))
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
