"""Batch inference: the output holds every input row as it was, plus the model's prediction;
a row that does not fit the signature stops the run with its row number and column."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlops_control import batch
from mlops_control.errors import ControlCentreError, SchemaError
from tests.model_fixtures import Shelf

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of a few rows, so that a small file crosses many block boundaries."""
    monkeypatch.setattr(batch, "BLOCK_BYTES", 2000)


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_every_row_gets_the_prediction_of_the_model(shelf: Shelf, tmp_path: Path,
                                                    small_blocks: None) -> None:
    saved = shelf.forest()
    X = pd.concat([saved.X] * 3, ignore_index=True)  # 1707 rows, many blocks
    source = write_csv(X.assign(customer=[f"c{i}" for i in range(len(X))]), tmp_path / "in.csv")
    seen: list[int] = []
    report = batch.score_csv(saved.path, source, tmp_path / "out.csv", progress=seen.append)
    assert report.rows == len(X) and report.output == tmp_path / "out.csv"
    assert report.seconds > 0
    out = pd.read_csv(report.output)
    assert list(out.columns) == [*X.columns, "customer", "prediction"]
    np.testing.assert_array_equal(out["prediction"], saved.predict(X))
    # The input's own text is copied through: values and extra columns are unchanged.
    assert out["customer"].tolist() == [f"c{i}" for i in range(len(X))]
    original = source.read_text().splitlines()
    written = report.output.read_text().splitlines()
    assert [line.rsplit(",", 1)[0] for line in written] == original
    assert seen == sorted(seen) and seen[-1] == len(X)


def test_several_values_per_row_become_numbered_columns(shelf: Shelf, tmp_path: Path) -> None:
    saved = shelf.probabilities()
    source = write_csv(saved.X.iloc[:40], tmp_path / "in.csv")
    out = pd.read_csv(batch.score_csv(saved.path, source, tmp_path / "out.csv").output)
    np.testing.assert_allclose(out[["prediction_0", "prediction_1"]].to_numpy(),
                               saved.predict(saved.X.iloc[:40]))


def test_mixed_types_and_windows_line_ends_are_scored_too(shelf: Shelf, tmp_path: Path) -> None:
    saved = shelf.mixed()
    source = tmp_path / "in.csv"
    saved.X.iloc[:50].to_csv(source, index=False, lineterminator="\r\n")
    out = pd.read_csv(batch.score_csv(saved.path, source, tmp_path / "out.csv").output)
    np.testing.assert_array_equal(out["prediction"], saved.predict(saved.X.iloc[:50]))
    assert out["city"].tolist() == saved.X["city"].iloc[:50].tolist()


def test_blank_lines_and_quoted_line_breaks_keep_rows_and_predictions_together(
        shelf: Shelf, tmp_path: Path) -> None:
    saved = shelf.forest()
    X = saved.X.iloc[:5]
    frame = X.assign(note=["a", "two\nlines", "c", "d", "e"])
    text = frame.to_csv(index=False)
    source = tmp_path / "in.csv"
    source.write_text(text.replace("\n", "\n\n", 2))
    out = pd.read_csv(batch.score_csv(saved.path, source, tmp_path / "out.csv").output)
    assert out["note"].tolist() == frame["note"].tolist()
    np.testing.assert_array_equal(out["prediction"], saved.predict(X))


def test_a_bad_value_names_its_row_and_column(shelf: Shelf, tmp_path: Path,
                                              small_blocks: None) -> None:
    saved = shelf.forest()
    frame = saved.X.iloc[:300].astype(object)
    frame.iloc[236, 4] = "n/a?"
    source = write_csv(frame, tmp_path / "in.csv")
    with pytest.raises(SchemaError) as caught:
        batch.score_csv(saved.path, source, tmp_path / "out.csv")
    assert str(caught.value) == "column 'mean_smoothness', row 237: 'n/a?' is not a double"
    assert not (tmp_path / "out.csv").exists()
    assert list(tmp_path.iterdir()) == [source]  # no partial output is left behind


def test_a_short_row_is_named(shelf: Shelf, tmp_path: Path, small_blocks: None) -> None:
    saved = shelf.forest()
    lines = saved.X.iloc[:100].to_csv(index=False).splitlines()
    lines[60] = "1.0,2.0,3.0"
    source = tmp_path / "in.csv"
    source.write_text("\n".join(lines) + "\n")
    with pytest.raises(SchemaError, match=r"^row 60 has 3 values but the header names 30"):
        batch.score_csv(saved.path, source, tmp_path / "out.csv")


def test_a_missing_column_is_named_before_anything_is_scored(shelf: Shelf,
                                                             tmp_path: Path) -> None:
    saved = shelf.forest()
    source = write_csv(saved.X.drop(columns=["worst_area"]).iloc[:5], tmp_path / "in.csv")
    with pytest.raises(SchemaError, match="missing required column 'worst_area'"):
        batch.score_csv(saved.path, source, tmp_path / "out.csv")


def test_a_missing_value_in_an_integer_column_names_its_row(shelf: Shelf,
                                                            tmp_path: Path) -> None:
    saved = shelf.mixed()
    frame = saved.X.iloc[:20].astype(object)
    frame.iloc[13, 0] = None
    source = write_csv(frame, tmp_path / "in.csv")
    with pytest.raises(SchemaError, match=r"^column 'age', row 14: a missing value"):
        batch.score_csv(saved.path, source, tmp_path / "out.csv")


def test_a_model_failure_names_the_rows_it_failed_on(shelf: Shelf, tmp_path: Path) -> None:
    saved = shelf.fragile()
    frame = saved.X.iloc[:10].copy()
    frame.iloc[4, 0] = -1.0
    source = write_csv(frame, tmp_path / "in.csv")
    with pytest.raises(ControlCentreError, match="the model failed on rows 1-10: ValueError"):
        batch.score_csv(saved.path, source, tmp_path / "out.csv")


def test_scoring_an_output_again_adds_a_second_prediction_column(shelf: Shelf,
                                                                 tmp_path: Path) -> None:
    saved = shelf.forest()
    first = batch.score_csv(saved.path, write_csv(saved.X.iloc[:5], tmp_path / "in.csv"),
                            tmp_path / "once.csv")
    second = batch.score_csv(saved.path, first.output, tmp_path / "twice.csv")
    out = pd.read_csv(second.output)
    assert list(out.columns)[-2:] == ["prediction", "_prediction"]


def test_a_file_with_only_a_header_gives_only_a_header(shelf: Shelf, tmp_path: Path) -> None:
    saved = shelf.forest()
    source = write_csv(saved.X.iloc[:0], tmp_path / "in.csv")
    report = batch.score_csv(saved.path, source, tmp_path / "out.csv")
    assert report.rows == 0
    assert pd.read_csv(report.output).columns[-1] == "prediction"


def test_batch_scoring_does_not_import_mlflow(shelf: Shelf, tmp_path: Path) -> None:
    saved = shelf.forest()
    source = write_csv(saved.X.iloc[:5], tmp_path / "in.csv")
    code = ("import sys; from mlops_control.batch import score_csv; "
            f"score_csv({str(saved.path)!r}, {str(source)!r}, {str(tmp_path / 'o.csv')!r}); "
            "print('mlflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)
    assert out.stdout.strip() == "False"


def test_a_model_without_signature_scores_the_columns_as_read(shelf: Shelf,
                                                              tmp_path: Path) -> None:
    saved = shelf.unsigned()
    source = write_csv(saved.X.iloc[:30], tmp_path / "in.csv")
    out = pd.read_csv(batch.score_csv(saved.path, source, tmp_path / "out.csv").output)
    np.testing.assert_array_equal(out["prediction"], saved.predict(saved.X.iloc[:30]))


def test_a_positional_model_scores_by_position_whatever_the_header_says(
        shelf: Shelf, tmp_path: Path, small_blocks: None) -> None:
    saved = shelf.tensor()  # takes 4 columns by position
    source = tmp_path / "in.csv"
    pd.DataFrame(saved.X, columns=["x", "x", "x", "x"]).to_csv(source, index=False)
    report = batch.score_csv(saved.path, source, tmp_path / "out.csv")
    assert report.rows == len(saved.X)
    out = pd.read_csv(report.output)
    np.testing.assert_array_equal(out["prediction"], saved.predict(saved.X))


def test_a_model_column_named_twice_stops_the_run(shelf: Shelf, tmp_path: Path) -> None:
    saved = shelf.forest()
    X = saved.X.iloc[:5]
    source = tmp_path / "in.csv"
    X.assign(dup=X["mean_area"]).rename(columns={"dup": "mean_area"}).to_csv(source, index=False)
    with pytest.raises(SchemaError, match="column 'mean_area' is named 2 times"):
        batch.score_csv(saved.path, source, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()
