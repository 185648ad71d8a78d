"""The capture-stats Lambda on a recorded S3 event, against moto (S3 and CloudWatch) and an
in-memory registry: what it publishes is exactly what the catalogue says and exactly what the
``<project>_stats`` dashboard plots, with drift against the training statistics of the
version the endpoint serves."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import numpy as np
import pytest

from lambdas import capture_stats
from mlops_control import names
from mlops_control.dashboards import cloudwatch as dashboards
from mlops_control.errors import RegistryError
from mlops_control.monitoring import catalogue, fast_stats, stats
from tests import events as recorded
from tests.capture_files import KEY, predictions, record, split_request
from tests.lambdas.conftest import REGION

BUCKET = "mlops-artifact-bucket"
ENDPOINT = "test-project-production"
FEATURES = ["mean_radius", "mean_texture", "worst_area"]


@dataclass
class Capture:
    aws: Any
    s3: Any
    cw: Any
    rng: np.random.Generator


@pytest.fixture
def capture_env(aws, monkeypatch) -> Capture:
    monkeypatch.setenv(names.ENV_CAPTURE_PREFIX, "capture")
    monkeypatch.setattr(capture_stats, "_references", None)
    rng = np.random.default_rng(0)
    training = rng.normal([14.0, 19.0, 880.0], [3.5, 4.3, 570.0], size=(2000, 3))
    aws.registry.add("test-project", "4", **{names.TAG_ENDPOINT: ENDPOINT,
                                              names.TAG_STATUS: names.Status.IN_SERVICE})
    aws.registry.artifacts[("run-4", names.TRAINING_STATS_ARTIFACT)] = json.dumps(
        fast_stats.training_stats(dict(zip(FEATURES, training.T, strict=True)))).encode()
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    return Capture(aws, s3, boto3.client("cloudwatch", region_name=REGION), rng)


def upload(s3, rows: np.ndarray, when: str = "2026-11-26T12:00:30Z") -> None:
    # Three requests: the rows split in three, as clients would send them.
    lines = [record(split_request(FEATURES, part.tolist()), predictions([0, 1] * (len(part) // 2)
                                                                         + [1] * (len(part) % 2)),
                    when=when) for part in np.array_split(rows, 3)]
    s3.put_object(Bucket=BUCKET, Key=KEY, Body="\n".join(lines).encode())


def published(cw) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    found = set()
    for page in cw.get_paginator("list_metrics").paginate(Namespace=names.STATS_NAMESPACE):
        for m in page["Metrics"]:
            found.add((m["MetricName"], tuple((d["Name"], d["Value"]) for d in m["Dimensions"])))
    return found


def test_a_capture_file_becomes_exactly_the_catalogues_metrics(capture_env, context):
    env = capture_env
    upload(env.s3, env.rng.normal([14.0, 19.0, 880.0], [3.5, 4.3, 570.0], size=(300, 3)))
    result = capture_stats.handler(recorded.load("s3_capture_created"), context)
    assert result["result"] == "published" and result["version"] == "4"
    assert (result["records"], result["skipped"]) == (3, 0)
    metrics = published(env.cw)
    expected = {m.name: m.dimensions for m in catalogue.published_by(catalogue.CAPTURE_STATS)}
    assert {name for name, _ in metrics} == set(expected)
    for name, dims in metrics:
        assert tuple(d for d, _ in dims) == expected[name]


def test_every_metric_on_the_stats_dashboard_is_published(capture_env, context):
    env = capture_env
    upload(env.s3, env.rng.normal([14.0, 19.0, 880.0], [3.5, 4.3, 570.0], size=(300, 3)))
    capture_stats.handler(recorded.load("s3_capture_created"), context)
    metrics = published(env.cw)
    body = dashboards.stats_dashboard("test-project", ENDPOINT, FEATURES, REGION)
    lines = [line for w in body["widgets"] if w["type"] == "metric"
             for line in w["properties"]["metrics"] if not isinstance(line[0], dict)]
    assert lines
    for line in lines:
        namespace, name, *dims = [x for x in line if isinstance(x, str)]
        assert namespace == names.STATS_NAMESPACE
        assert (name, tuple(zip(dims[::2], dims[1::2], strict=True))) in metrics, line


def test_the_mean_on_cloudwatch_is_the_mean_of_the_captured_values(capture_env, context):
    env = capture_env
    rows = env.rng.normal([14.0, 19.0, 880.0], [3.5, 4.3, 570.0], size=(300, 3))
    upload(env.s3, rows)
    capture_stats.handler(recorded.load("s3_capture_created"), context)
    answer = env.cw.get_metric_statistics(
        Namespace=names.STATS_NAMESPACE, MetricName=names.STAT_FEATURE_VALUE,
        Dimensions=[{"Name": "Project", "Value": "test-project"},
                    {"Name": "Endpoint", "Value": ENDPOINT},
                    {"Name": "Feature", "Value": "mean_radius"}],
        StartTime=datetime(2026, 11, 26, 11, 0, tzinfo=UTC),
        EndTime=datetime(2026, 11, 26, 13, 0, tzinfo=UTC), Period=3600,
        Statistics=["Average", "SampleCount"])
    (point,) = answer["Datapoints"]
    assert point["SampleCount"] == 300
    assert point["Average"] == pytest.approx(rows[:, 0].mean())


def test_drift_is_measured_against_the_served_versions_training_data(capture_env, context):
    env = capture_env
    drifted = env.rng.normal([14.0, 19.0, 880.0], [3.5, 4.3, 570.0], size=(300, 3))
    drifted[:, 0] *= 1.5  # mean_radius half as large again as in training
    upload(env.s3, drifted)
    result = capture_stats.handler(recorded.load("s3_capture_created"), context)
    assert result["max_drift"] > stats.PSI_MAJOR
    drift = {dict(dims)["Feature"]: name for name, dims in published(env.cw)
             if name == names.STAT_FEATURE_DRIFT}
    assert set(drift) == set(FEATURES)


def test_without_mlflow_the_statistics_are_published_without_drift(capture_env, context,
                                                                   monkeypatch):
    env = capture_env

    def unreachable(*args, **kwargs):
        raise RegistryError("MLflow is down")

    monkeypatch.setattr(env.aws.registry, "model_versions", unreachable)
    upload(env.s3, env.rng.normal(size=(300, 3)))
    result = capture_stats.handler(recorded.load("s3_capture_created"), context)
    assert result["result"] == "published" and result["reference"] is False
    names_published = {name for name, _ in published(env.cw)}
    assert names.STAT_FEATURE_VALUE in names_published
    assert names.STAT_FEATURE_DRIFT not in names_published


def test_a_file_of_an_unconfigured_project_or_outside_the_prefix_is_ignored(capture_env,
                                                                            context):
    env = capture_env
    other = recorded.load("s3_capture_created")
    other["detail"]["object"]["key"] = KEY.replace("test-project-production",
                                                   "other-project-production")
    outside = recorded.load("s3_capture_created")
    outside["detail"]["object"]["key"] = "mlflow/1/artifacts/x.jsonl"
    for event in (other, outside):
        assert capture_stats.handler(event, context)["result"] == "ignored"
    assert published(env.cw) == set()


def test_the_project_of_an_endpoint_is_the_longest_configured_prefix():
    projects = frozenset({"churn", "churn-model"})
    assert capture_stats.project_of("churn-model-production", projects) == "churn-model"
    assert capture_stats.project_of("churn-production", projects) == "churn"
    assert capture_stats.project_of("churn-model-prod-2", projects) is None
