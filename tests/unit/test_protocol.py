"""MLflow's scoring protocol as the server parses it: every format, and every way a request
can be wrong, answered with the status and a message that names the problem."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from mlops_control.errors import SchemaError
from mlops_control.model_loader import load_model
from mlops_control.schema import InputPlan
from mlops_control.serving import protocol
from tests.model_fixtures import Shelf


@pytest.fixture(scope="module")
def forest(shelf: Shelf) -> tuple[InputPlan, Any]:
    saved = shelf.forest()
    return InputPlan(load_model(saved.path)), saved


@pytest.fixture(scope="module")
def mixed(shelf: Shelf) -> InputPlan:
    return InputPlan(load_model(shelf.mixed().path))


@pytest.fixture(scope="module")
def tensor(shelf: Shelf) -> InputPlan:
    return InputPlan(load_model(shelf.tensor().path))


def parse(plan: InputPlan, body: Any, content_type: str = "application/json") -> Any:
    """The model input a request becomes, the batch's conversion included (whose errors the
    batcher answers with a 400, as here)."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    parsed = protocol.parse(raw, content_type, plan)
    try:
        data = parsed.data if parsed.rows is None else plan.from_rows(parsed.rows)
    except SchemaError as exc:
        raise protocol.RequestError(400, protocol.INVALID_INPUT, str(exc)) from None
    assert InputPlan.n_rows(data) == parsed.n_rows
    return data


def refused(plan: InputPlan, body: Any, content_type: str = "application/json") -> tuple[int, str]:
    with pytest.raises(protocol.RequestError) as caught:
        parse(plan, body, content_type)
    return caught.value.status, caught.value.message


def rows_of(X: Any, n: int = 3) -> list[list[float]]:
    return X.iloc[:n].values.tolist()


# --- every format gives the same matrix -----------------------------------------------------
def test_every_json_format_and_csv_give_the_same_input(forest: tuple[InputPlan, Any]) -> None:
    plan, saved = forest
    X = saved.X.iloc[:3]
    expected = X.to_numpy()
    records = X.to_dict(orient="records")
    columns = X.to_dict(orient="list")
    bodies = [
        {"dataframe_split": {"columns": list(X.columns), "data": rows_of(X)}},
        {"dataframe_split": {"columns": list(X.columns), "data": rows_of(X), "index": [7, 8, 9]}},
        {"dataframe_records": records},
        {"instances": records},
        {"inputs": records},
        {"inputs": columns},
        {"instances": columns},
    ]
    for body in bodies:
        np.testing.assert_array_equal(parse(plan, body), expected, err_msg=str(list(body)))
    csv = X.to_csv(index=False).encode()
    np.testing.assert_array_equal(parse(plan, csv, "text/csv"), expected)
    np.testing.assert_array_equal(parse(plan, csv, "text/csv; charset=utf-8"), expected)


def test_columns_in_another_order_and_extra_columns_are_accepted(forest) -> None:
    plan, saved = forest
    X = saved.X.iloc[:2]
    shuffled = X[list(reversed(X.columns))].assign(customer_id=["a", "b"])
    body = {"dataframe_split": {"columns": list(shuffled.columns),
                                "data": shuffled.values.tolist()}}
    np.testing.assert_array_equal(parse(plan, body), X.to_numpy())
    csv = shuffled.to_csv(index=False).encode()
    np.testing.assert_array_equal(parse(plan, csv, "text/csv"), X.to_numpy())


def test_a_column_named_twice_in_a_csv_header_is_refused(forest) -> None:
    # Found by the fuzzer: a 500 (pyarrow's KeyError), where the JSON formats said 400.
    plan, saved = forest
    X = saved.X.iloc[:1]
    csv = X.assign(extra=X["mean_radius"]).rename(columns={"extra": "mean_radius"})
    status, message = refused(plan, csv.to_csv(index=False).encode(), "text/csv")
    assert status == 400 and "column 'mean_radius' is named 2 times" in message


def test_positional_columns_are_taken_by_position_whatever_their_names(tensor) -> None:
    # Found by the fuzzer: a CSV header "a,a,a,a" to a tensor model was a 500.
    csv = b"a,a,a,a\n1,2,3,4\n5,6,7,8\n"
    np.testing.assert_array_equal(parse(tensor, csv, "text/csv"),
                                  [[1, 2, 3, 4], [5, 6, 7, 8]])


def test_a_positional_model_takes_dataframe_split_with_any_column_names(tensor) -> None:
    # MLflow's server accepts this; ours asked for columns '#0'... until the fuzzer sent
    # 'columns': [] (a 500) and showed the branch was wrong for positional models.
    body = {"dataframe_split": {"columns": ["a", "b", "c", "d"], "data": [[1, 2, 3, 4]]}}
    np.testing.assert_array_equal(parse(tensor, body), [[1, 2, 3, 4]])
    status, message = refused(tensor, {"dataframe_split": {"columns": [], "data": []}})
    assert status == 400 and "takes 4 columns by position; the request has 0" in message


def test_a_single_row_object_is_one_row(forest) -> None:
    plan, saved = forest
    row = saved.X.iloc[0].to_dict()
    np.testing.assert_array_equal(parse(plan, {"inputs": row}), saved.X.iloc[:1].to_numpy())


def test_values_mlflow_accepts_in_a_double_column_are_accepted(forest) -> None:
    """Numbers sent as strings, booleans and nulls (NaN): what `mlflow models serve` takes."""
    plan, saved = forest
    row: list[Any] = rows_of(saved.X, 1)[0]
    row[:4] = ["1.5", True, None, 3]
    data = parse(plan, {"dataframe_split": {"columns": list(saved.X.columns), "data": [row]}})
    assert data[0, 0] == 1.5 and data[0, 1] == 1.0 and np.isnan(data[0, 2]) and data[0, 3] == 3


def test_json_with_nan_literals_is_read_like_python_writes_it(forest) -> None:
    plan, saved = forest
    body = json.dumps({"dataframe_split": {"columns": list(saved.X.columns),
                                           "data": [[float("nan")] * 30]}}).encode()
    assert b"NaN" in body
    assert np.isnan(parse(plan, body)).all()


# --- malformed and unsupported bodies -------------------------------------------------------
def test_a_body_that_is_not_json_is_a_400_saying_so(forest) -> None:
    status, message = refused(forest[0], b"{not json")
    assert status == 400 and "not valid JSON" in message


def test_a_body_without_a_known_format_names_the_formats(forest) -> None:
    status, message = refused(forest[0], {"data": [[1.0]]})
    assert status == 400
    assert "dataframe_split" in message and "'data'" in message
    status, message = refused(forest[0], [[1.0]])
    assert status == 400 and "JSON object" in message


def test_two_formats_at_once_are_refused(forest) -> None:
    status, message = refused(forest[0], {"inputs": {}, "instances": []})
    assert status == 400 and "exactly one" in message


def test_an_unsupported_content_type_is_a_415(forest) -> None:
    status, message = refused(forest[0], b"<xml/>", "application/xml")
    assert status == 415 and "application/xml" in message
    status, message = refused(forest[0], b"a,b", "text/csv; charset=latin-1")
    assert status == 415 and "latin-1" in message


# --- bodies that do not fit the signature ---------------------------------------------------
def test_a_missing_column_is_named(forest) -> None:
    plan, saved = forest
    X = saved.X.drop(columns=["mean_texture"]).iloc[:1]
    status, message = refused(plan, {"dataframe_split": {"columns": list(X.columns),
                                                         "data": X.values.tolist()}})
    assert status == 400 and "missing required column 'mean_texture'" in message
    status, message = refused(plan, X.to_csv(index=False).encode(), "text/csv")
    assert status == 400 and "'mean_texture'" in message


def test_a_record_missing_a_column_names_the_row_and_the_column(forest) -> None:
    plan, saved = forest
    records = saved.X.iloc[:3].to_dict(orient="records")
    del records[2]["worst_area"]
    status, message = refused(plan, {"dataframe_records": records})
    assert status == 400 and "row 3" in message and "'worst_area'" in message


def test_a_string_in_a_double_column_names_the_column_and_the_row(forest) -> None:
    plan, saved = forest
    data = rows_of(saved.X)
    data[1][2] = "large"
    status, message = refused(plan, {"dataframe_split": {"columns": list(saved.X.columns),
                                                         "data": data}})
    assert status == 400
    assert message == "column 'mean_perimeter', row 2: 'large' is not a number"


def test_a_bad_csv_value_names_the_column_and_the_row(forest) -> None:
    plan, saved = forest
    csv = saved.X.iloc[:4].to_csv(index=False).splitlines()
    cells = csv[3].split(",")
    cells[5] = "oops"
    csv[3] = ",".join(cells)
    status, message = refused(plan, "\n".join(csv).encode(), "text/csv")
    assert status == 400
    assert message == "column 'mean_compactness', row 3: 'oops' is not a double"


def test_a_csv_row_with_too_few_values_is_named(forest) -> None:
    plan, saved = forest
    csv = saved.X.iloc[:2].to_csv(index=False) + "1.0,2.0\n"
    status, message = refused(plan, csv.encode(), "text/csv")
    assert status == 400 and message.startswith("row 3 has 2 values but the header names 30")


def test_a_csv_without_header_says_a_header_is_needed(forest) -> None:
    plan, saved = forest
    status, message = refused(plan, saved.X.iloc[:2].to_csv(index=False, header=False).encode(),
                              "text/csv")
    assert status == 400 and "missing required columns" in message
    status, message = refused(plan, b"", "text/csv")
    assert status == 400 and "header" in message


def test_a_ragged_row_is_named(forest) -> None:
    plan, saved = forest
    data = rows_of(saved.X)
    data[2] = data[2][:-1]
    status, message = refused(plan, {"dataframe_split": {"columns": list(saved.X.columns),
                                                         "data": data}})
    assert status == 400 and message.startswith("row 3 has 29 values")


def test_nameless_rows_for_a_model_with_named_columns_are_refused_as_mlflow_does(forest) -> None:
    plan, saved = forest
    status, message = refused(plan, {"instances": rows_of(saved.X)})
    assert status == 400 and "named columns" in message


def test_no_rows_is_refused(forest) -> None:
    plan, saved = forest
    status, message = refused(plan, {"dataframe_split": {"columns": list(saved.X.columns),
                                                         "data": []}})
    assert status == 400 and "no rows" in message


# --- other column types -----------------------------------------------------------------------
def test_mixed_types_become_typed_columns(mixed: InputPlan) -> None:
    data = parse(mixed, {"dataframe_records": [
        {"age": 40, "member": True, "city": "lyon", "score": 0.5},
        {"age": "41", "member": "false", "city": "nice", "score": 1},
    ]})
    assert data["age"].dtype == np.int64 and list(data["age"]) == [40, 41]
    assert list(data["member"]) == [True, False]
    assert list(data["city"]) == ["lyon", "nice"]
    assert data["score"].dtype == np.float64


@pytest.mark.parametrize(("column", "value", "problem"), [
    ("age", 40.5, "is not a whole number"),
    ("age", None, "a missing value, but integer columns cannot hold one"),
    ("member", "maybe", "is not a boolean"),
    ("city", [75], "is a nested list, not a string"),
    ("city", {"name": "lyon"}, "is a nested object, not a string"),
    ("score", "high", "is not a number"),
])
def test_a_value_of_the_wrong_type_names_column_and_row(mixed: InputPlan, column: str,
                                                        value: Any, problem: str) -> None:
    rows = [{"age": 40, "member": True, "city": "lyon", "score": 0.5} for _ in range(2)]
    rows[1][column] = value
    status, message = refused(mixed, {"dataframe_records": rows})
    assert status == 400
    assert message.startswith(f"column {column!r}, row 2: ") and message.endswith(problem)


def test_a_number_or_a_boolean_in_a_string_column_reaches_the_model_as_it_came(
        mixed: InputPlan) -> None:
    # As MLflow's server does (it casts the column to object): the model judges the value.
    rows = [{"age": 40, "member": True, "city": city, "score": 0.5}
            for city in ("lyon", 75, True, None, 2.5)]
    data = parse(mixed, {"dataframe_records": rows})
    assert data["city"].dtype == object
    assert [type(v) for v in data["city"]] == [str, int, bool, type(None), float]


def test_a_missing_value_in_a_csv_long_column_names_the_row(mixed: InputPlan) -> None:
    csv = b"age,member,city,score\n40,true,lyon,0.5\n,false,nice,1.5\n"
    status, message = refused(mixed, csv, "text/csv")
    assert status == 400 and message.startswith("column 'age', row 2: a missing value")


def test_a_tensor_model_takes_rows_by_position(tensor: InputPlan) -> None:
    rows = [[0.1, 0.2, 0.3, 0.4], [1, 2, 3, 4]]
    np.testing.assert_array_equal(parse(tensor, {"instances": rows}), np.array(rows, float))
    np.testing.assert_array_equal(parse(tensor, {"inputs": rows}), np.array(rows, float))
    status, message = refused(tensor, {"instances": [[0.1, 0.2]]})
    assert status == 400 and "row 1 has 2 values; the model takes 4" in message
    status, message = refused(tensor, {"dataframe_records": [{"a": 1.0}]})
    assert status == 400 and "by position" in message


# --- answers ----------------------------------------------------------------------------------
def test_predictions_are_written_as_mlflow_writes_them() -> None:
    assert json.loads(protocol.predictions_body(np.array([1, 0]))) == {"predictions": [1, 0]}
    proba = np.array([[0.25, 0.75]])
    assert json.loads(protocol.predictions_body(proba)) == {"predictions": [[0.25, 0.75]]}
    as_float32 = np.array([0.1], dtype=np.float32)
    assert json.loads(protocol.predictions_body(as_float32)) == {
        "predictions": as_float32.tolist()}
    labels = np.array(["cat", "dog"], dtype=object)
    assert json.loads(protocol.predictions_body(labels)) == {"predictions": ["cat", "dog"]}


def test_optional_columns_may_be_left_out(shelf: Shelf, tmp_path) -> None:
    import shutil

    import yaml

    folder = tmp_path / "model"
    shutil.copytree(shelf.mixed().path, folder)
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    inputs = json.loads(mlmodel["signature"]["inputs"])
    for spec in inputs:
        spec["required"] = spec["name"] != "score"
    mlmodel["signature"]["inputs"] = json.dumps(inputs)
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    plan = InputPlan(load_model(folder))
    body = {"dataframe_split": {"columns": ["city", "age", "member"],
                                "data": [["nice", 30, False]]}}
    data = parse(plan, body)
    assert set(data) == {"age", "member", "city"}
    status, message = refused(plan, {"dataframe_split": {"columns": ["city", "member"],
                                                         "data": [["nice", False]]}})
    assert status == 400 and "missing required column 'age'" in message


@pytest.fixture(scope="module")
def unsigned(shelf: Shelf) -> InputPlan:
    return InputPlan(load_model(shelf.unsigned().path))


@pytest.mark.parametrize("body", [
    # The fuzzer's find: pandas raises InvalidIndexError (no ValueError) for an object name.
    {"dataframe_split": {"columns": [{}], "data": {"a": 1}}},
    {"dataframe_split": {"columns": [[]], "data": [[1]]}},
    {"dataframe_split": {"data": [[1, 2], [3]], "columns": ["a"]}},
    {"dataframe_records": [{"a": 1}, 7]},
    {"instances": [[1, 2], [3]]},
])
def test_a_model_without_a_signature_refuses_what_is_no_table_with_a_400(unsigned, body) -> None:
    status, message = refused(unsigned, body)
    assert status == 400 and "is not a valid table" in message, message
