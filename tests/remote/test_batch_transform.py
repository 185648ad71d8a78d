"""`mlops remote batch-inference`: a SageMaker model of the version (a model.tar.gz: the
training job's, or MLflow's artifacts packed once) and a Batch Transform job on CSV in S3,
split by line, in moto."""

from __future__ import annotations

import tarfile

import boto3
import pytest
from botocore.stub import Stubber

from mlops_control import names
from mlops_control.backends import sagemaker as sm
from mlops_control.errors import ControlCentreError
from mlops_control.remote import batch_transform
from mlops_control.serving import protocol
from mlops_control.serving.served import prepare
from tests.remote.conftest import REGION


def config(remote) -> sm.SageMakerConfig:
    return sm.SageMakerConfig(image_uri=remote.outputs.image_uri,
                              role_arn=remote.outputs.sagemaker_role, capture_uri="",
                              region=REGION,
                              artifacts_destination=remote.outputs.artifacts_destination)


def upload_model(s3, saved_path, bucket: str, prefix: str) -> None:
    for file in saved_path.rglob("*"):
        if file.is_file():
            s3.upload_file(str(file), bucket, f"{prefix}/{file.relative_to(saved_path)}")


def test_a_transform_job_scores_the_csv_prefix_with_the_shared_image(remote, tmp_path):
    from tests import models

    saved = models.tensor(tmp_path / "saved")
    s3 = remote.client("s3")
    upload_model(s3, saved.path, "artifact-bucket", "mlflow/1/models/m-3/artifacts")
    remote.store.add("test-project", "3", source="mlflow-artifacts:/1/models/m-3/artifacts")
    sagemaker = remote.client("sagemaker")

    operation = batch_transform.start(
        sagemaker=sagemaker, registry=remote.registry, config=config(remote),
        project="test-project", version="3", input_uri="s3://data-bucket/batch/in/",
        output_uri="s3://artifact-bucket/batch/test-project/v3", token="t1", s3=s3)
    described = operation.wait()

    assert described["TransformJobStatus"] == "Completed"
    # Large files are cut by line into mini-batches; the container takes header-less ones.
    assert described["TransformInput"]["SplitType"] == "Line"
    assert described["BatchStrategy"] == "MultiRecord"
    assert described["MaxPayloadInMB"] == batch_transform.MAX_PAYLOAD_MB
    assert described["Environment"][names.ENV_SERVING_HEADERLESS_CSV] == "1"
    assert int(described["Environment"][names.ENV_SERVING_MAX_BODY_BYTES]) >= 100 * 2 ** 20
    assert described["TransformInput"]["ContentType"] == "text/csv"
    assert described["TransformOutput"]["S3OutputPath"] == (
        "s3://artifact-bucket/batch/test-project/v3/test-project-batch-v3-t1/")
    model = sagemaker.describe_model(ModelName=operation.job.model_name)
    assert model["PrimaryContainer"]["Image"] == remote.outputs.image_uri
    # Batch Transform refuses ModelDataSource: a tarball packed from the artifacts, beside
    # their folder, so an endpoint copying the folder into /opt/ml/model does not copy it.
    packed = "s3://artifact-bucket/mlflow/1/models/m-3/artifacts.tar.gz"
    assert model["PrimaryContainer"]["ModelDataUrl"] == packed
    assert "ModelDataSource" not in model["PrimaryContainer"]
    in_folder = [o["Key"] for o in s3.list_objects_v2(
        Bucket="artifact-bucket", Prefix="mlflow/1/models/m-3/artifacts/")["Contents"]]
    assert not any(k.endswith(".tar.gz") for k in in_folder), in_folder

    # The tarball unpacks into /opt/ml/model as the folder was, and the real serving code
    # loads it and scores a header-less mini-batch by the signature's column order.
    archive = tmp_path / "model.tar.gz"
    s3.download_file("artifact-bucket", "mlflow/1/models/m-3/artifacts.tar.gz", str(archive))
    opt_ml_model = tmp_path / "opt" / "ml" / "model"
    with tarfile.open(archive) as tar:
        tar.extractall(opt_ml_model, filter="data")
    served = prepare(opt_ml_model, "test-project", "3")
    rows = saved.X[:5]
    body = "\n".join(",".join(str(float(v)) for v in row) for row in rows).encode()
    parsed = protocol.parse(body, "text/csv", served.plan, headerless_csv=True)
    predictions = served.model.predict(served.plan.to_model(parsed.data))
    assert predictions.tolist() == saved.predict(rows).tolist()

    # A second job reuses the tarball instead of packing the model again.
    stamp = s3.head_object(Bucket="artifact-bucket",
                           Key="mlflow/1/models/m-3/artifacts.tar.gz")["ETag"]
    batch_transform.start(
        sagemaker=sagemaker, registry=remote.registry, config=config(remote),
        project="test-project", version="3", input_uri="s3://data-bucket/batch/in/",
        output_uri="s3://artifact-bucket/batch/test-project/v3", token="t2", s3=s3)
    assert s3.head_object(Bucket="artifact-bucket",
                          Key="mlflow/1/models/m-3/artifacts.tar.gz")["ETag"] == stamp


def test_a_remotely_trained_version_uses_its_training_jobs_model_tarball(remote):
    sagemaker = remote.client("sagemaker")
    sagemaker.create_training_job(
        TrainingJobName="test-project-train-e1",
        AlgorithmSpecification={"TrainingImage": remote.outputs.image_uri,
                                "TrainingInputMode": "File"},
        RoleArn=remote.outputs.sagemaker_role,
        OutputDataConfig={"S3OutputPath": "s3://artifact-bucket/training"},
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1,
                        "VolumeSizeInGB": 10},
        StoppingCondition={"MaxRuntimeInSeconds": 600})
    tarball = sagemaker.describe_training_job(
        TrainingJobName="test-project-train-e1")["ModelArtifacts"]["S3ModelArtifacts"]
    remote.store.add("test-project", "4", **{
        names.TAG_LINEAGE_TRAINING_JOB: "test-project-train-e1"})

    operation = batch_transform.start(
        sagemaker=sagemaker, registry=remote.registry, config=config(remote),
        project="test-project", version="4", input_uri="s3://data-bucket/batch/in/",
        output_uri="s3://artifact-bucket/batch/test-project/v4", token="t1")

    container = sagemaker.describe_model(ModelName=operation.job.model_name)["PrimaryContainer"]
    assert container["ModelDataUrl"] == tarball
    assert tarball.endswith("/test-project-train-e1/output/model.tar.gz")
    assert "ModelDataSource" not in container


def test_the_batch_create_model_request_passes_botocore_validation():
    client = boto3.client("sagemaker", region_name=REGION, aws_access_key_id="x",
                          aws_secret_access_key="x")
    cfg = sm.SageMakerConfig(image_uri="1.dkr.ecr.eu-west-1.amazonaws.com/i:t",
                             role_arn="arn:aws:iam::1:role/r", capture_uri="", region=REGION)
    spec = sm.DeploymentSpec(project="p", stage="batch", version="1", endpoint="p-batch",
                             model_name="m", config_name="m", model_data_uri="", token="t")
    request = batch_transform.create_model_request(spec, cfg, "s3://b/m/model.tar.gz")
    job = batch_transform.BatchJob("j", "m", "s3://in/", "s3://out/j/")
    transform = batch_transform.transform_job_request(
        job, instance_type="ml.m5.large", instance_count=1, project="p", version="1")
    with Stubber(client) as stub:
        stub.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:eu-west-1:1:model/m"},
                          request)
        stub.add_response("create_transform_job",
                          {"TransformJobArn": "arn:aws:sagemaker:eu-west-1:1:transform-job/j"},
                          transform)
        client.create_model(**request)
        client.create_transform_job(**transform)
        stub.assert_no_pending_responses()


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
