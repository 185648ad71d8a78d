"""`mlops remote batch-inference`: a SageMaker model of the version (model data straight from
MLflow's artifacts) and a Batch Transform job on CSV in S3, in moto."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from mlops_control.backends import sagemaker as sm
from mlops_control.errors import ControlCentreError
from mlops_control.remote import batch_transform
from tests.remote.conftest import REGION


def config(remote) -> sm.SageMakerConfig:
    return sm.SageMakerConfig(image_uri=remote.outputs.image_uri,
                              role_arn=remote.outputs.sagemaker_role, capture_uri="",
                              region=REGION,
                              artifacts_destination=remote.outputs.artifacts_destination)


def test_a_transform_job_scores_the_csv_prefix_with_the_shared_image(remote):
    remote.store.add("test-project", "3", source="mlflow-artifacts:/1/models/m-3/artifacts")
    sagemaker = remote.client("sagemaker")

    operation = batch_transform.start(
        sagemaker=sagemaker, registry=remote.registry, config=config(remote),
        project="test-project", version="3", input_uri="s3://data-bucket/batch/in/",
        output_uri="s3://artifact-bucket/batch/test-project/v3", token="t1")
    described = operation.wait()

    assert described["TransformJobStatus"] == "Completed"
    assert described["TransformInput"]["SplitType"] == "None"  # whole files: CSV keeps its header
    assert described["TransformInput"]["ContentType"] == "text/csv"
    assert described["TransformOutput"]["S3OutputPath"] == (
        "s3://artifact-bucket/batch/test-project/v3/test-project-batch-v3-t1/")
    model = sagemaker.describe_model(ModelName=operation.job.model_name)
    assert model["PrimaryContainer"]["Image"] == remote.outputs.image_uri
    assert model["PrimaryContainer"]["ModelDataSource"]["S3DataSource"]["S3Uri"] == (
        "s3://artifact-bucket/mlflow/1/models/m-3/artifacts/")


def test_a_failed_transform_job_reports_sagemakers_reason():
    client = boto3.client("sagemaker", region_name=REGION, aws_access_key_id="x",
                          aws_secret_access_key="x")
    job = batch_transform.BatchJob("j", "m", "s3://in/", "s3://out/j/")
    with Stubber(client) as stub:
        stub.add_response("describe_transform_job", {
            "TransformJobName": "j", "TransformJobArn": "arn:aws:sagemaker:eu-west-1:1:t/j",
            "TransformJobStatus": "Failed", "ModelName": "m",
            "FailureReason": "ClientError: See job logs: 400 from /invocations",
            "TransformInput": {"DataSource": {"S3DataSource": {
                "S3DataType": "S3Prefix", "S3Uri": "s3://in/"}}},
            "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
            "CreationTime": "2026-11-26T12:00:00Z"}, {"TransformJobName": "j"})
        with pytest.raises(ControlCentreError, match="transform job j Failed: ClientError"):
            batch_transform.TransformOperation(client, job, poll_s=0).wait()


def test_locations_that_are_not_s3_are_refused_before_anything_is_made(remote):
    remote.store.add("test-project", "3")
    sagemaker = remote.client("sagemaker")
    with pytest.raises(ControlCentreError, match="not an s3://"):
        batch_transform.start(sagemaker=sagemaker, registry=remote.registry,
                              config=config(remote), project="test-project", version="3",
                              input_uri="/tmp/in.csv", output_uri="s3://artifact-bucket/o",
                              token="t1")
    assert sagemaker.list_models()["Models"] == []


def test_the_output_files_are_listed_for_the_user(remote):
    s3 = remote.client("s3")
    s3.put_object(Bucket="artifact-bucket", Key="batch/j/in.csv.out", Body=b"{}")
    assert batch_transform.outputs_written(s3, "s3://artifact-bucket/batch/j/") == [
        "s3://artifact-bucket/batch/j/in.csv.out"]
