"""Feature statistics and drift on known data, computed by hand; the numpy implementation
(training job, serving) gives the same numbers as the pure Python one (the Lambda)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlops_control.monitoring import fast_stats, stats


def test_moments_of_known_values_and_of_two_merged_halves():
    # 1, 2, 3, 4: mean 2.5; squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5; std sqrt(5 / 4).
    whole = stats.moments([1.0, 2.0, 3.0, 4.0])
    assert (whole.count, whole.mean, whole.m2) == (4, 2.5, 5.0)
    assert whole.std == pytest.approx(math.sqrt(1.25))
    merged = stats.moments([1.0, 2.0]).merge(stats.moments([3.0, 4.0]))
    assert (merged.count, merged.mean, merged.m2, merged.minimum, merged.maximum) == \
        (4, 2.5, 5.0, 1.0, 4.0)


def test_absent_blank_nan_and_infinite_values_are_missing_and_text_is_not():
    values = [1.0, None, float("nan"), "", float("inf"), "2", "red"]
    assert [stats.is_missing(v) for v in values] == [False, True, True, True, True, False, False]
    m = stats.moments(stats.to_number(v) for v in values[:6])
    assert (m.count, m.missing, m.mean) == (2, 4, 1.5)
    assert m.missing_share == pytest.approx(4 / 6)


def test_decile_edges_of_1_to_100_and_ten_equal_bins():
    # Quantile q at index q * 99 with linear interpolation: 0.1 -> 9.9 -> 10 + 0.9 * (11 - 10).
    edges = stats.decile_edges([float(v) for v in range(1, 101)])
    assert edges == pytest.approx([10.9, 20.8, 30.7, 40.6, 50.5, 60.4, 70.3, 80.2, 90.1])
    assert stats.histogram(edges, [float(v) for v in range(1, 101)]) == [10] * 10


def test_a_value_on_an_edge_falls_in_the_bin_above_it():
    assert stats.histogram([1.0, 2.0], [0.5, 1.0, 1.5, 2.0, 2.5, None]) == [1, 2, 2]


def test_psi_without_smoothing_matches_the_hand_computed_value():
    # Expected shares 0.25 each, actual 0.1, 0.2, 0.3, 0.4:
    #   (0.1 - 0.25) ln(0.1 / 0.25) = -0.15 * -0.916291 = 0.137444
    #   (0.2 - 0.25) ln(0.2 / 0.25) = -0.05 * -0.223144 = 0.011157
    #   (0.3 - 0.25) ln(0.3 / 0.25) =  0.05 *  0.182322 = 0.009116
    #   (0.4 - 0.25) ln(0.4 / 0.25) =  0.15 *  0.470004 = 0.070501
    assert stats.psi([25, 25, 25, 25], [10, 20, 30, 40], smoothing=0) == pytest.approx(
        0.228217, abs=1e-6)


def test_psi_smooths_each_bin_by_half_a_count():
    # Shares (count + 0.5) / (100 + 0.5 * 2): expected 50.5/101 = 0.5 each; actual 80.5/101 =
    # 0.797030 and 20.5/101 = 0.202970. PSI = 0.297030 * ln(1.594059) - 0.297030 *
    # ln(0.405941) = 0.297030 * 0.466284 + 0.297030 * 0.901548 = 0.406287.
    assert stats.psi([50, 50], [80, 20]) == pytest.approx(0.406287, abs=1e-6)
    # An empty bin costs a finite amount instead of infinity.
    assert math.isfinite(stats.psi([50, 50], [100, 0]))


def test_the_same_distribution_does_not_drift():
    assert stats.psi([10, 20, 30], [10, 20, 30]) == 0.0
    assert stats.psi([10, 20, 30], [20, 40, 60], smoothing=0) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(("value", "level"), [
    (None, "unknown"), (0.0, "stable"), (0.099, "stable"), (0.1, "moderate"),
    (0.25, "moderate"), (0.2501, "major"), (3.0, "major")])
def test_drift_levels_follow_the_documented_thresholds(value, level):
    assert stats.drift_level(value) == level


def test_drift_is_not_told_from_too_few_live_rows():
    reference = stats.summarize([float(v) for v in range(1000)])
    few = stats.histogram(reference["edges"], [float(v) for v in range(stats.MIN_DRIFT_ROWS - 1)])
    assert stats.drift(reference, few) is None
    enough = stats.histogram(reference["edges"], [float(v) for v in range(stats.MIN_DRIFT_ROWS)])
    # Every one of those rows lies in the lowest training decile: a large shift.
    assert stats.drift(reference, enough) > stats.PSI_MAJOR


def test_a_feature_holding_text_is_categorical_with_its_missing_share():
    assert stats.summarize(["a", "b", None, "a"]) == {
        "kind": "categorical", "count": 3, "missing": 1, "missing_share": 0.25}


def test_training_statistics_document_of_known_columns():
    document = stats.training_stats({"x": [1.0, 2.0, 3.0, None], "c": ["a", "b", "a", "a"]},
                                    target=[0, 1, 1, 1])
    assert document["rows"] == 4 and document["feature_order"] == ["x", "c"]
    x = document["features"]["x"]
    assert (x["kind"], x["count"], x["missing"], x["mean"], x["min"], x["max"]) == \
        ("numeric", 3, 1, 2.0, 1.0, 3.0)
    assert x["missing_share"] == 0.25 and sum(x["counts"]) == 3
    assert document["target"]["mean"] == 0.75


values = st.lists(st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.just(float("nan"))),
                  min_size=1, max_size=400)


@settings(max_examples=80, deadline=None)
@given(values)
def test_numpy_and_pure_python_statistics_agree(column):
    pure = stats.summarize(column)
    fast = fast_stats.summarize(np.array(column, dtype=np.float64))
    assert fast["edges"] == pure["edges"]
    assert fast["counts"] == pure["counts"]
    assert (fast["count"], fast["missing"], fast["min"], fast["max"]) == \
        (pure["count"], pure["missing"], pure["min"], pure["max"])
    if pure["count"]:
        assert fast["mean"] == pytest.approx(pure["mean"], rel=1e-9, abs=1e-6)
        assert fast["std"] == pytest.approx(pure["std"], rel=1e-6, abs=1e-6)


def test_numpy_histogram_and_moments_agree_with_pure_python_on_live_values():
    rng = np.random.default_rng(3)
    reference = fast_stats.summarize(rng.normal(size=5000))
    live = rng.normal(0.3, 1.2, size=777)
    live[::50] = np.nan
    assert fast_stats.histogram(reference["edges"], live) == stats.histogram(
        reference["edges"], [stats.to_number(v) for v in live.tolist()])
    fast, pure = fast_stats.moments(live), stats.moments(stats.to_number(v) for v in live)
    assert (fast.count, fast.missing) == (pure.count, pure.missing)
    assert fast.mean == pytest.approx(pure.mean) and fast.std == pytest.approx(pure.std)
