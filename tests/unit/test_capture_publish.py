"""Data-capture files read back into rows, and the CloudWatch metric data made of them."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from mlops_control import names
from mlops_control.monitoring import capture, publish, stats
from tests.capture_files import KEY, predictions, record, split_request


def test_the_endpoint_and_variant_come_from_the_key_sagemaker_writes():
    assert capture.endpoint_of(KEY) == ("test-project-production", "AllTraffic")
    with pytest.raises(capture.CaptureError):
        capture.endpoint_of("capture/test-project-production/readme.txt")


def test_every_mlflow_request_format_and_encoding_gives_the_same_rows():
    expected = [{"a": 1.0, "b": 2.0}, {"a": 3.0, "b": 4.0}]
    bodies = [
        (split_request(["a", "b"], [[1.0, 2.0], [3.0, 4.0]]), "application/json", "JSON"),
        (json.dumps({"dataframe_records": expected}), "application/json", "JSON"),
        (json.dumps({"instances": expected}), "application/json", "JSON"),
        (json.dumps({"inputs": {"a": [1.0, 3.0], "b": [2.0, 4.0]}}), "application/json",
         "JSON"),
        (json.dumps({"instances": [[1.0, 2.0], [3.0, 4.0]]}), "application/json", "BASE64"),
        ("a,b\n1.0,2.0\n3.0,4.0\n", "text/csv", "CSV"),
    ]
    for body, content_type, encoding in bodies:
        text = record(body, predictions([0, 1]), content_type=content_type, encoding=encoding)
        parsed = capture.read(text, feature_order=["a", "b"])
        rows = parsed.minutes[0].rows
        assert [{k: float(v) for k, v in row.items()} for row in rows] == expected, body
        assert parsed.minutes[0].predictions == [0, 1]


def test_a_record_that_cannot_be_read_is_skipped_and_counted():
    good = record(split_request(["a"], [[1.0]]), predictions([1]))
    text = "\n".join([good, "{not json", record("{}", predictions([])), good])
    parsed = capture.read(text)
    assert (parsed.records, parsed.skipped) == (4, 2)
    assert len(parsed.minutes[0].rows) == 2 and parsed.reasons


def test_rows_are_grouped_by_minute_of_inference_time():
    text = "\n".join([
        record(split_request(["a"], [[1.0]]), predictions([0]), when="2026-11-26T12:00:59Z"),
        record(split_request(["a"], [[2.0]]), predictions([1]), when="2026-11-26T12:01:00Z")])
    minutes = capture.read(text).minutes
    assert [m.minute for m in minutes] == [datetime(2026, 11, 26, 12, 0, tzinfo=UTC),
                                           datetime(2026, 11, 26, 12, 1, tzinfo=UTC)]


def _by(datums, name, feature=None):
    found = [d for d in datums if d["MetricName"] == name and (
        feature is None or {"Name": "Feature", "Value": feature} in d["Dimensions"])]
    return found


def test_metric_data_of_a_known_file():
    # Two minutes: a = 1, 2, missing in the first; a = 4 in the second; b always text.
    text = "\n".join([
        record(split_request(["a", "b"], [[1.0, "x"], [2.0, "y"], [None, "x"]]),
               predictions([0, 1, 1]), when="2026-11-26T12:00:10Z"),
        record(split_request(["a", "b"], [[4.0, "z"]]), predictions([1]),
               when="2026-11-26T12:01:10Z")])
    datums = publish.datums(capture.read(text), "test-project", "test-project-production", None)
    first, second = _by(datums, names.STAT_FEATURE_VALUE, "a")
    assert first["StatisticValues"] == {"SampleCount": 2.0, "Sum": 3.0, "Minimum": 1.0,
                                        "Maximum": 2.0}
    assert second["StatisticValues"]["Sum"] == 4.0
    assert [d["Value"] for d in _by(datums, names.STAT_FEATURE_MISSING, "a")] == \
        pytest.approx([1 / 3, 0.0])
    # std of 1 and 2 is 0.5; one value has no spread to speak of.
    assert [d["Value"] for d in _by(datums, names.STAT_FEATURE_SPREAD, "a")] == [0.5]
    # A text feature has its missing share only.
    assert _by(datums, names.STAT_FEATURE_VALUE, "b") == []
    assert [d["Value"] for d in _by(datums, names.STAT_FEATURE_MISSING, "b")] == [0.0, 0.0]
    prediction = _by(datums, names.STAT_PREDICTION)
    assert (prediction[0]["Values"], prediction[0]["Counts"]) == ([0.0, 1.0], [1.0, 2.0])
    for datum in datums:
        assert datum["Dimensions"][:2] == [{"Name": "Project", "Value": "test-project"},
                                           {"Name": "Endpoint",
                                            "Value": "test-project-production"}]
    # No reference, no drift.
    assert not _by(datums, names.STAT_FEATURE_DRIFT) and not _by(datums, names.STAT_MAX_DRIFT)


def test_drift_per_feature_and_its_maximum_against_the_training_statistics():
    reference = stats.training_stats({"a": [float(v) for v in range(1000)],
                                      "b": [float(v) for v in range(1000)]}, None)
    # a: live values spread like training (0..999); b: all in the top decile.
    rows = [[float(v), float(900 + v % 100)] for v in range(0, 1000, 5)]
    text = record(split_request(["a", "b"], rows), predictions([0] * len(rows)))
    datums = publish.datums(capture.read(text), "p", "p-production", reference)
    drift = {d["Dimensions"][2]["Value"]: d["Value"] for d in _by(datums,
                                                                  names.STAT_FEATURE_DRIFT)}
    assert drift["a"] < stats.PSI_MODERATE < stats.PSI_MAJOR < drift["b"]
    (largest,) = _by(datums, names.STAT_MAX_DRIFT)
    assert largest["Value"] == drift["b"]
    assert largest["Dimensions"] == [{"Name": "Project", "Value": "p"},
                                     {"Name": "Endpoint", "Value": "p-production"}]


def test_many_distinct_predictions_are_binned_to_150_values():
    values, counts = publish.distribution([v / 7 for v in range(1000)])
    assert len(values) == publish.MAX_DISTRIBUTION_VALUES and sum(counts) == 1000
    assert values == sorted(values)


def test_requests_hold_at_most_a_thousand_datums_each():
    datums = [{"MetricName": "x"}] * 2500
    assert [len(r["MetricData"]) for r in publish.requests(datums)] == [1000, 1000, 500]
    assert all(r["Namespace"] == names.STATS_NAMESPACE for r in publish.requests(datums))
