"""`mlops remote monitoring-job`: the baseline processing job in moto, the schedule through
botocore's Stubber (moto has no Model Monitor schedules), and the record preprocessor on a
capture record as SageMaker writes it."""

from __future__ import annotations

import json
from types import SimpleNamespace

import boto3
import pytest
from botocore.stub import Stubber

from mlops_control.errors import ControlCentreError
from mlops_control.remote import monitor_preprocessor, monitoring
from tests.remote.conftest import REGION

ROLE = "arn:aws:iam::123456789012:role/sagemaker"


def test_the_analyzer_image_is_aws_per_region_and_unknown_regions_are_named():
    assert monitoring.analyzer_image("eu-west-1") == (
        "468650794304.dkr.ecr.eu-west-1.amazonaws.com/sagemaker-model-monitor-analyzer")
    with pytest.raises(ControlCentreError, match="--analyzer-image"):
        monitoring.analyzer_image("xx-nowhere-1")


def test_the_baseline_job_reads_the_csv_and_writes_beside_the_reports(remote):
    plan = monitoring.plan("test-project-production", "artifact-bucket",
                           "s3://data-bucket/data/test-project/baseline.csv", "20261126")
    sagemaker, s3 = remote.client("sagemaker"), remote.client("s3")

    operation = monitoring.start_baseline(sagemaker=sagemaker, s3=s3, p=plan,
                                          image=monitoring.analyzer_image(REGION),
                                          role_arn=ROLE)

    described = operation.wait()
    assert described["ProcessingJobStatus"] == "Completed"
    assert described["AppSpecification"]["ImageUri"].endswith("/sagemaker-model-monitor-analyzer")
    assert described["ProcessingInputs"][0]["S3Input"]["S3Uri"] == plan.dataset_uri
    assert described["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["S3Uri"] == (
        "s3://artifact-bucket/monitoring/test-project-production/baseline/20261126")
    # moto does not keep a job's Environment: what the analyzer reads is checked as sent.
    sent = monitoring.baseline_job_request(plan, image="i", role_arn=ROLE)["Environment"]
    assert json.loads(sent["dataset_format"]) == {
        "csv": {"header": True, "output_columns_position": "START"}}
    uploaded = s3.get_object(Bucket="artifact-bucket",
                             Key="monitoring/test-project-production/code/monitor_preprocessor.py")
    assert b"def preprocess_handler" in uploaded["Body"].read()


def test_the_schedule_is_created_once_then_updated_to_the_new_baseline():
    client = boto3.client("sagemaker", region_name=REGION, aws_access_key_id="x",
                          aws_secret_access_key="x")
    plan = monitoring.plan("test-project-production", "artifact-bucket", "s3://d/b.csv", "t2")
    image = monitoring.analyzer_image(REGION)
    request = monitoring.schedule_request(plan, image=image, role_arn=ROLE)
    arn = "arn:aws:sagemaker:eu-west-1:123456789012:monitoring-schedule/x"
    with Stubber(client) as stub:  # Stubber validates each request against the API model
        stub.add_client_error("describe_monitoring_schedule", "ResourceNotFound",
                              "Monitoring schedule test-project-production-data-quality "
                              "does not exist", expected_params={
                                  "MonitoringScheduleName": plan.schedule})
        stub.add_response("create_monitoring_schedule", {"MonitoringScheduleArn": arn},
                          request)
        stub.add_response("describe_monitoring_schedule", {
            "MonitoringScheduleArn": arn, "MonitoringScheduleName": plan.schedule,
            "MonitoringScheduleStatus": "Scheduled", "CreationTime": "2026-11-26T12:00:00Z",
            "LastModifiedTime": "2026-11-26T12:00:00Z",
            "MonitoringScheduleConfig": request["MonitoringScheduleConfig"]},
            {"MonitoringScheduleName": plan.schedule})
        stub.add_response("update_monitoring_schedule", {"MonitoringScheduleArn": arn}, {
            "MonitoringScheduleName": plan.schedule,
            "MonitoringScheduleConfig": request["MonitoringScheduleConfig"]})
        assert monitoring.schedule(sagemaker=client, p=plan, image=image, role_arn=ROLE) == arn
        assert monitoring.schedule(sagemaker=client, p=plan, image=image, role_arn=ROLE) == arn
        stub.assert_no_pending_responses()
    definition = request["MonitoringScheduleConfig"]["MonitoringJobDefinition"]
    assert definition["MonitoringInputs"][0]["EndpointInput"]["EndpointName"] == (
        "test-project-production")
    assert definition["BaselineConfig"]["ConstraintsResource"]["S3Uri"].endswith(
        "/baseline/t2/constraints.json")


def capture(data: str, encoding: str = "JSON"):
    """One record of an endpoint's data capture, as Model Monitor hands it to the script."""
    return SimpleNamespace(endpoint_input=SimpleNamespace(
        data=data, encoding=encoding, observedContentType="application/json"))


def test_a_captured_one_row_request_becomes_one_flat_record():
    body = json.dumps({"dataframe_split": {"columns": ["a", "b"], "data": [[1.5, 2.0]]}})
    assert monitor_preprocessor.preprocess_handler(capture(body)) == {"a": 1.5, "b": 2.0}


def test_a_captured_multi_row_request_becomes_one_record_per_row_even_base64_encoded():
    import base64

    body = json.dumps({"dataframe_records": [{"a": 1}, {"a": 2}]})
    encoded = base64.b64encode(body.encode()).decode()
    assert monitor_preprocessor.preprocess_handler(capture(encoded, "BASE64")) == [
        {"a": 1}, {"a": 2}]


def test_something_that_is_not_a_scoring_request_is_refused_by_name():
    with pytest.raises(ValueError, match="not an MLflow scoring request"):
        monitor_preprocessor.preprocess_handler(capture(json.dumps({"rows": []})))
