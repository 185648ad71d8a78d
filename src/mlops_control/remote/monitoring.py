"""``mlops remote monitoring-job``: a SageMaker Model Monitor data-quality schedule on an
endpoint, against a baseline computed from a CSV of inputs (with a header row).

1. A processing job with Model Monitor's analyzer image suggests the baseline (statistics and
   constraints) from the CSV;
2. a monitoring schedule (hourly by default) compares the endpoint's captured requests with it,
   through :mod:`.monitor_preprocessor`, which flattens MLflow's scoring JSON into records;
   violations land under ``s3://<artifact bucket>/monitoring/<endpoint>/reports/`` and the
   metrics in CloudWatch (``aws/sagemaker/Endpoints/data-metrics``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_control import names
from mlops_control.backends import sagemaker as sm
from mlops_control.errors import ControlCentreError
from mlops_control.remote.jobs import wait_for_job

ANALYZER_REPOSITORY = "sagemaker-model-monitor-analyzer"
ANALYZER_ACCOUNTS = {
    # Model Monitor's prebuilt analyzer image, per region: the registry accounts AWS publishes
    # ("Docker Registry Paths"), as the SageMaker Python SDK lists them in
    # image_uri_config/model-monitor.json. Elsewhere pass --analyzer-image.
    "af-south-1": "875698925577", "ap-east-1": "001633400207",
    "ap-northeast-1": "574779866223", "ap-northeast-2": "709848358524",
    "ap-south-1": "126357580389", "ap-southeast-1": "245545462676",
    "ap-southeast-2": "563025443158", "ca-central-1": "536280801234",
    "cn-north-1": "453000072557", "cn-northwest-1": "453252182341",
    "eu-central-1": "048819808253", "eu-north-1": "895015795356",
    "eu-south-1": "933208885752", "eu-west-1": "468650794304",
    "eu-west-2": "749857270468", "eu-west-3": "680080141114",
    "me-south-1": "607024016150", "sa-east-1": "539772159869",
    "us-east-1": "156813124566", "us-east-2": "777275614652",
    "us-west-1": "890145073186", "us-west-2": "159807026194",
}
PROCESSING = "/opt/ml/processing"
HOURLY = "cron(0 * ? * * *)"
PREPROCESSOR = Path(__file__).with_name("monitor_preprocessor.py")


def analyzer_image(region: str) -> str:
    try:
        account = ANALYZER_ACCOUNTS[region]
    except KeyError:
        raise ControlCentreError(
            f"no Model Monitor analyzer image known for {region}; pass --analyzer-image "
            "(see 'Docker Registry Paths' in the SageMaker documentation)") from None
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{suffix}/{ANALYZER_REPOSITORY}"


@dataclass(frozen=True)
class MonitoringPlan:
    endpoint: str
    baseline_job: str
    schedule: str
    dataset_uri: str
    baseline_uri: str
    reports_uri: str
    preprocessor_uri: str


def plan(endpoint: str, artifact_bucket: str, dataset_uri: str, token: str) -> MonitoringPlan:
    if not dataset_uri.startswith("s3://"):
        raise ControlCentreError(f"the baseline dataset {dataset_uri!r} is not an s3:// location")
    root = f"s3://{artifact_bucket}/monitoring/{endpoint}"
    return MonitoringPlan(
        endpoint=endpoint,
        baseline_job=f"{endpoint[:38].rstrip('-')}-baseline-{token[:14]}",
        schedule=f"{endpoint[:50].rstrip('-')}-data-quality",
        dataset_uri=dataset_uri, baseline_uri=f"{root}/baseline/{token}",
        reports_uri=f"{root}/reports", preprocessor_uri=f"{root}/code/monitor_preprocessor.py")


def baseline_job_request(p: MonitoringPlan, *, image: str, role_arn: str,
                         instance_type: str = "ml.m5.xlarge") -> dict[str, Any]:
    """The processing job that suggests statistics and constraints from the CSV."""
    dataset = f"{PROCESSING}/input/baseline_dataset_input"
    return {
        "ProcessingJobName": p.baseline_job,
        "ProcessingInputs": [{"InputName": "baseline_dataset_input", "S3Input": {
            "S3Uri": p.dataset_uri, "LocalPath": dataset, "S3DataType": "S3Prefix",
            "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"}}],
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": "monitoring_output", "S3Output": {
            "S3Uri": p.baseline_uri, "LocalPath": f"{PROCESSING}/output",
            "S3UploadMode": "EndOfJob"}}]},
        "ProcessingResources": {"ClusterConfig": {
            "InstanceCount": 1, "InstanceType": instance_type, "VolumeSizeInGB": 20}},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
        "AppSpecification": {"ImageUri": image},
        "Environment": {
            "dataset_format": json.dumps({"csv": {"header": True,
                                                  "output_columns_position": "START"}}),
            "dataset_source": dataset,
            "output_path": f"{PROCESSING}/output",
            "publish_cloudwatch_metrics": "Disabled",
        },
        "RoleArn": role_arn,
        "Tags": [{"Key": names.SM_TAG_ENDPOINT, "Value": p.endpoint}],
    }


def schedule_request(p: MonitoringPlan, *, image: str, role_arn: str, cron: str = HOURLY,
                     instance_type: str = "ml.m5.xlarge") -> dict[str, Any]:
    return {
        "MonitoringScheduleName": p.schedule,
        "MonitoringScheduleConfig": {
            "ScheduleConfig": {"ScheduleExpression": cron},
            "MonitoringType": "DataQuality",
            "MonitoringJobDefinition": {
                "BaselineConfig": {
                    "ConstraintsResource": {"S3Uri": f"{p.baseline_uri}/constraints.json"},
                    "StatisticsResource": {"S3Uri": f"{p.baseline_uri}/statistics.json"}},
                "MonitoringInputs": [{"EndpointInput": {
                    "EndpointName": p.endpoint, "LocalPath": f"{PROCESSING}/input/endpoint",
                    "S3InputMode": "File", "S3DataDistributionType": "FullyReplicated"}}],
                "MonitoringOutputConfig": {"MonitoringOutputs": [{"S3Output": {
                    "S3Uri": p.reports_uri, "LocalPath": f"{PROCESSING}/output",
                    "S3UploadMode": "Continuous"}}]},
                "MonitoringResources": {"ClusterConfig": {
                    "InstanceCount": 1, "InstanceType": instance_type, "VolumeSizeInGB": 20}},
                "MonitoringAppSpecification": {
                    "ImageUri": image, "RecordPreprocessorSourceUri": p.preprocessor_uri},
                "StoppingCondition": {"MaxRuntimeInSeconds": 3600},
                "Environment": {"publish_cloudwatch_metrics": "Enabled"},
                "RoleArn": role_arn,
            },
        },
        "Tags": [{"Key": names.SM_TAG_ENDPOINT, "Value": p.endpoint}],
    }


@dataclass
class ProcessingOperation:
    """The baseline job in flight: ``status()`` looks once, ``wait()`` until it ends."""

    sagemaker: Any
    job_name: str
    poll_s: float = 30.0
    timeout_s: float = 3900.0
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def status(self) -> dict[str, Any]:
        return dict(self.sagemaker.describe_processing_job(ProcessingJobName=self.job_name))

    def wait(self, progress: Callable[[str], None] = lambda _: None) -> dict[str, Any]:
        return wait_for_job(self.status, "ProcessingJobStatus", f"baseline job {self.job_name}",
                            poll_s=self.poll_s, timeout_s=self.timeout_s, sleep=self.sleep,
                            clock=self.clock, progress=progress)


def start_baseline(*, sagemaker: Any, s3: Any, p: MonitoringPlan, image: str,
                   role_arn: str) -> ProcessingOperation:
    """Upload the record preprocessor beside the reports and start the baseline job."""
    bucket, _, key = p.preprocessor_uri.removeprefix("s3://").partition("/")
    s3.put_object(Bucket=bucket, Key=key, Body=PREPROCESSOR.read_bytes())
    sagemaker.create_processing_job(**baseline_job_request(p, image=image, role_arn=role_arn))
    return ProcessingOperation(sagemaker, p.baseline_job)


def schedule(*, sagemaker: Any, p: MonitoringPlan, image: str, role_arn: str,
             cron: str = HOURLY) -> str:
    """Create the schedule, or point an existing one at the new baseline (idempotent)."""
    request = schedule_request(p, image=image, role_arn=role_arn, cron=cron)
    try:
        sagemaker.describe_monitoring_schedule(MonitoringScheduleName=p.schedule)
    except Exception as exc:
        if not sm.is_missing(exc):
            raise
        return str(sagemaker.create_monitoring_schedule(**request)["MonitoringScheduleArn"])
    return str(sagemaker.update_monitoring_schedule(
        MonitoringScheduleName=p.schedule,
        MonitoringScheduleConfig=request["MonitoringScheduleConfig"])["MonitoringScheduleArn"])
