"""The CloudWatch dashboard bodies: CloudWatch's documented structure (our JSON schema, plus
the two rules a schema cannot say), the golden files, and the metric catalogue: no widget and
no alarm points at a metric that nobody publishes. (What the capture-stats Lambda really
publishes is checked against the same catalogue in tests/lambdas/test_capture_stats.py.)

Regenerate the golden files after an intended change with ``UPDATE_GOLDEN=1``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mlops_control import names
from mlops_control.backends import sagemaker as sm
from mlops_control.dashboards import cloudwatch
from mlops_control.monitoring import catalogue, definition

TESTS = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((TESTS / "schemas" / "cloudwatch_dashboard.schema.json").read_text())
GOLDEN = TESTS / "golden"
REGION = "eu-west-1"
FEATURES = ["mean_radius", "mean_texture", "worst_area"]
ENDPOINTS = ["test-project-staging", "test-project-production"]


def bodies() -> dict[str, dict[str, Any]]:
    """Every shape of body the deployment can write."""
    many = [f"f{i}" for i in range(45)]
    return {
        "metrics-one-endpoint": cloudwatch.metrics_dashboard(
            "test-project", "test-project-production", names.SM_VARIANT, REGION),
        "metrics-two-endpoints": cloudwatch.metrics_dashboard(
            "test-project", "test-project-production", names.SM_VARIANT, REGION,
            endpoints=ENDPOINTS),
        "stats-two-endpoints": cloudwatch.stats_dashboard(
            "test-project", "test-project-production", FEATURES, REGION, endpoints=ENDPOINTS),
        "stats-no-features": cloudwatch.stats_dashboard(
            "test-project", "test-project-production", [], REGION),
        "stats-many-features": cloudwatch.stats_dashboard(
            "test-project", "test-project-production", many, REGION, endpoints=ENDPOINTS),
    }


def metric_lines(body: dict[str, Any]) -> list[list[Any]]:
    return [line for w in body["widgets"] if w["type"] == "metric"
            for line in w["properties"]["metrics"]]


def named_metric(line: list[Any]) -> tuple[str, str, dict[str, str]] | None:
    """``(namespace, name, dimensions)`` of a metric line; None for metric math."""
    if isinstance(line[0], dict):
        return None
    strings = [x for x in line if isinstance(x, str)]
    namespace, name, *pairs = strings
    return namespace, name, dict(zip(pairs[::2], pairs[1::2], strict=True))


@pytest.mark.parametrize("case", list(bodies()))
def test_each_body_follows_cloudwatchs_documented_structure(case):
    body = bodies()[case]
    jsonschema.validate(body, SCHEMA)
    for line in metric_lines(body):
        if isinstance(line[0], dict):
            continue
        # The rendering object, if any, comes last; dimensions come in name/value pairs.
        objects = [i for i, x in enumerate(line) if isinstance(x, dict)]
        assert objects in ([], [len(line) - 1]), line
        assert (len(line) - len(objects)) % 2 == 0, f"odd dimension list: {line}"


def test_the_schema_refuses_what_cloudwatch_refuses():
    good = bodies()["metrics-one-endpoint"]
    too_wide = json.loads(json.dumps(good))
    too_wide["widgets"][1]["width"] = 25
    no_metrics = json.loads(json.dumps(good))
    no_metrics["widgets"][1]["properties"]["metrics"] = []
    bad_stat = json.loads(json.dumps(good))
    bad_stat["widgets"][1]["properties"]["metrics"][0][-1]["stat"] = "Mean"
    two_options = json.loads(json.dumps(good))
    two_options["widgets"][1]["properties"]["metrics"][0].append({"label": "again"})
    for broken in (too_wide, no_metrics, bad_stat, two_options):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(broken, SCHEMA)


@pytest.mark.parametrize("case", list(bodies()))
def test_widgets_sit_on_the_24_column_grid_without_overlapping(case):
    body = bodies()[case]
    taken: set[tuple[int, int]] = set()
    for w in body["widgets"]:
        assert w["x"] + w["width"] <= 24
        cells = {(x, y) for x in range(w["x"], w["x"] + w["width"])
                 for y in range(w["y"], w["y"] + w["height"])}
        assert not cells & taken, f"{w['properties'].get('title')} overlaps another widget"
        taken |= cells


@pytest.mark.parametrize("case", list(bodies()))
def test_within_cloudwatchs_limits(case):
    body = bodies()[case]
    lines = metric_lines(body)
    assert len(body["widgets"]) <= 500 and len(lines) <= 2500
    assert all(len(w["properties"]["metrics"]) <= 500
               for w in body["widgets"] if w["type"] == "metric")


@pytest.mark.parametrize("case", list(bodies()))
def test_every_metric_in_a_body_is_in_the_catalogue_with_exactly_its_dimensions(case):
    for line in metric_lines(bodies()[case]):
        found = named_metric(line)
        if found is None:
            continue
        namespace, name, dimensions = found
        metric = catalogue.metric(namespace, name)  # KeyError: nobody publishes it
        assert tuple(dimensions) == metric.dimensions, line


def test_metric_math_uses_only_ids_defined_in_its_widget():
    for body in bodies().values():
        for w in body["widgets"]:
            if w["type"] != "metric":
                continue
            ids = {line[-1].get("id") for line in w["properties"]["metrics"]
                   if isinstance(line[-1], dict)} - {None}
            for line in w["properties"]["metrics"]:
                if isinstance(line[0], dict):
                    used = {token for token in line[0]["expression"].replace("+", " ").replace(
                        "-", " ").split()}
                    assert used <= ids, (used, ids)


def test_every_panel_of_the_definition_is_on_its_dashboard():
    body = bodies()["stats-two-endpoints"]
    titles = {w["properties"].get("title") for w in body["widgets"] if w["type"] == "metric"}
    for panel in definition.STATS.panels:
        if panel.scope == "feature":
            assert {panel.title.format(feature=f) for f in FEATURES} <= titles
        else:
            assert panel.title in titles
    metrics = bodies()["metrics-one-endpoint"]
    titles = {w["properties"].get("title") for w in metrics["widgets"] if w["type"] == "metric"}
    assert {p.title for p in definition.METRICS.panels} == titles


def test_both_stages_appear_whichever_deploys():
    one = cloudwatch.stats_dashboard("test-project", "test-project-staging", FEATURES, REGION,
                                     endpoints=ENDPOINTS)
    other = cloudwatch.stats_dashboard("test-project", "test-project-production", FEATURES,
                                       REGION, endpoints=ENDPOINTS)
    assert one == other
    shown = {named_metric(line)[2].get("Endpoint") for line in metric_lines(one)
             if named_metric(line)}
    assert shown == set(ENDPOINTS)


def test_a_dashboard_with_too_many_features_says_so():
    body = bodies()["stats-many-features"]
    assert "first 30 of 45 features" in body["widgets"][0]["properties"]["markdown"]


@pytest.mark.parametrize("name", ["test-project_metrics", "test-project_stats"])
def test_golden_files(name):
    cases = {"test-project_metrics": "metrics-two-endpoints",
             "test-project_stats": "stats-two-endpoints"}
    body = bodies()[cases[name]]
    golden = GOLDEN / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(json.dumps(body, indent=1, ensure_ascii=False) + "\n")
    assert body == json.loads(golden.read_text()), \
        "the body changed: review it, then UPDATE_GOLDEN=1 to accept"


def test_the_deployment_writes_both_dashboards_for_every_configured_stage():
    cfg = sm.SageMakerConfig(image_uri="i", role_arn="r", capture_uri="s3://b/capture",
                             region=REGION, stages={"staging": sm.StageConfig(),
                                                    "production": sm.StageConfig()})
    spec = sm.DeploymentSpec(project="test-project", stage="staging", version="3",
                             endpoint="test-project-staging", model_name="m", config_name="m",
                             model_data_uri="s3://b/m/", token="t")
    metrics, stats = sm.dashboard_requests(spec, cfg, FEATURES)
    assert metrics["DashboardName"] == "test-project_metrics"
    assert stats["DashboardName"] == "test-project_stats"
    assert json.loads(stats["DashboardBody"]) == bodies()["stats-two-endpoints"]
    assert sm.retire_requests("test-project", "staging")["delete_dashboards"] == {
        "DashboardNames": ["test-project_metrics", "test-project_stats"]}


def test_the_rollback_alarms_watch_metrics_sagemaker_publishes():
    cfg = sm.SageMakerConfig(image_uri="i", role_arn="r", capture_uri="s3://b/capture",
                             region=REGION)
    alarms = sm.alarm_requests("test-project-production", cfg)
    for alarm in alarms:
        metric = catalogue.metric(alarm["Namespace"], alarm["MetricName"])
        assert metric.publisher == catalogue.SAGEMAKER
        assert tuple(d["Name"] for d in alarm["Dimensions"]) == metric.dimensions
    spec = sm.DeploymentSpec(project="test-project", stage="production", version="3",
                             endpoint="test-project-production", model_name="m",
                             config_name="m", model_data_uri="s3://b/m/", token="t")
    rollback = sm.update_endpoint_request(spec, cfg)["DeploymentConfig"][
        "AutoRollbackConfiguration"]["Alarms"]
    assert [a["AlarmName"] for a in rollback] == [a["AlarmName"] for a in alarms]
    assert {a["MetricName"] for a in alarms} == {"Invocation5XXErrors", "ModelLatency"}
