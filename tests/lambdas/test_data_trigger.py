"""The data trigger: an S3 upload under data/<project>/ starts one training execution."""

from __future__ import annotations

from lambdas import data_trigger
from tests import events as recorded


def test_an_upload_under_a_project_prefix_starts_training_on_that_prefix(aws, context):
    result = data_trigger.handler(recorded.load("s3_object_created"), context)
    assert result["result"] == "started"
    [execution] = aws.executions(aws.train_arn)
    assert execution["input"]["project"] == "test-project"
    assert execution["input"]["data_location"] == "s3://mlops-data-bucket/data/test-project/"
    assert execution["input"]["data_version"] == "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e"
    assert execution["input"]["trigger"] == "new_data"
    assert len(execution["input"]["training_job_name"]) <= 63


def test_a_redelivered_event_trains_nothing_twice(aws, context):
    data_trigger.handler(recorded.load("s3_object_created"), context)
    again = data_trigger.handler(recorded.load("s3_object_created"), context)
    assert again["result"] == "duplicate" and len(aws.executions(aws.train_arn)) == 1


def test_an_upload_for_an_unconfigured_project_is_ignored(aws, context):
    event = recorded.load("s3_object_created")
    event["detail"]["object"]["key"] = "data/other-project/x.csv"
    assert data_trigger.handler(event, context)["result"] == "ignored"
    assert aws.executions(aws.train_arn) == []


def test_a_key_that_traverses_out_of_the_prefix_is_ignored(aws, context):
    event = recorded.load("s3_object_created")
    event["detail"]["object"]["key"] = "data/../secrets/x.csv"
    assert data_trigger.handler(event, context)["result"] == "ignored"
    assert aws.executions(aws.train_arn) == []
