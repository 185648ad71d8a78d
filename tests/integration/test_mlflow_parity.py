"""Parity with `mlflow models serve`: the same model and the same request get the same answer
from our server as from MLflow's own (started for real, with --env-manager local)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mlops_control import procs
from tests.model_fixtures import Shelf
from tests.models import SavedModel
from tests.serving_process import post, serving

pytestmark = pytest.mark.integration


@contextlib.contextmanager
def mlflow_serving(model_dir: Path, log: Path) -> Iterator[str]:
    port = procs.free_port()
    env = {**os.environ,
           # mlflow starts `uvicorn` by name, from this interpreter's folder.
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
           # MLflow 3.17 refuses to deserialise any model (skops included) without it.
           "MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", str(model_dir),
             "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        procs.wait_http(f"http://127.0.0.1:{port}/ping", 180, alive=lambda: proc.poll() is None,
                        what="mlflow models serve")
        yield f"http://127.0.0.1:{port}/invocations"
    finally:
        procs.stop_group(proc.pid, timeout=20)
        proc.wait(timeout=30)


@pytest.fixture(scope="module", params=["forest", "probabilities"])
def both(request: pytest.FixtureRequest, shelf: Shelf,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, SavedModel]]:
    saved: SavedModel = getattr(shelf, request.param)()
    tmp = tmp_path_factory.mktemp("parity")
    with serving(saved.path, tmp, workers=1) as ours, \
            mlflow_serving(saved.path, tmp / "mlflow.log") as theirs:
        yield f"{ours.url}/invocations", theirs, saved


def requests_for(saved: SavedModel) -> dict[str, tuple[Any, str]]:
    X = saved.X.iloc[5:9]
    records = X.to_dict(orient="records")
    split = {"columns": list(X.columns), "data": X.values.tolist()}
    lenient = [list(row) for row in X.values.tolist()]
    lenient[0][:3] = [str(lenient[0][0]), True, None]
    shuffled = X[list(reversed(X.columns))].assign(extra="ignored")
    return {
        "dataframe_split": ({"dataframe_split": split}, "application/json"),
        "dataframe_split with index": ({"dataframe_split": {**split, "index": [5, 6, 7, 8]}},
                                       "application/json"),
        "dataframe_records": ({"dataframe_records": records}, "application/json"),
        "instances as records": ({"instances": records}, "application/json"),
        "inputs as columns": ({"inputs": X.to_dict(orient="list")}, "application/json"),
        "inputs as one row": ({"inputs": records[0]}, "application/json"),
        "csv": (X.to_csv(index=False).encode(), "text/csv"),
        "numbers as strings, booleans and nulls": (
            {"dataframe_split": {**split, "data": lenient}}, "application/json"),
        "columns reordered, extra column": (
            {"dataframe_split": {"columns": list(shuffled.columns),
                                 "data": shuffled.values.tolist()}}, "application/json"),
        "csv with charset": (X.to_csv(index=False).encode(), "text/csv; charset=utf-8"),
    }


def test_every_format_gets_the_same_answer_as_mlflow(both) -> None:
    ours, theirs, saved = both
    for name, (body, content_type) in requests_for(saved).items():
        mlflow_status, mlflow_answer = post(theirs, body, content_type)
        assert mlflow_status == 200, (name, mlflow_answer)
        assert post(ours, body, content_type) == (200, mlflow_answer), name


def test_requests_mlflow_refuses_are_refused_too(both) -> None:
    ours, theirs, saved = both
    X = saved.X.iloc[:2]
    bad_value = X.values.tolist()
    bad_value[1][0] = "abc"
    bodies = {
        "missing column": {"dataframe_split": {"columns": list(X.columns[1:]),
                                               "data": X.values[:, 1:].tolist()}},
        "unparseable value": {"dataframe_split": {"columns": list(X.columns),
                                                  "data": bad_value}},
        "no format key": {"data": X.values.tolist()},
        "rows without names": {"instances": X.values.tolist()},
    }
    for name, body in bodies.items():
        mlflow_status, _ = post(theirs, body)
        status, answer = post(ours, body)
        assert mlflow_status == status == 400, (name, mlflow_status, status)
        assert answer["message"], name


@pytest.fixture(scope="module")
def titanic_both(tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[tuple[str, str, SavedModel]]:
    from tests.titanic import titanic

    tmp = tmp_path_factory.mktemp("titanic")
    saved = titanic(tmp / "model")
    with serving(saved.path, tmp, workers=1) as ours, \
            mlflow_serving(saved.path, tmp / "mlflow.log") as theirs:
        yield f"{ours.url}/invocations", theirs, saved


def test_missing_values_in_string_columns_get_mlflows_answer(titanic_both) -> None:
    """Issue 13.1: NaN/None in string (and optional double) columns, in every format; the
    smoke slice train_job.py writes (training rows, NaN included) among them."""
    import json

    ours, theirs, saved = titanic_both
    assert isinstance(saved.X, pd.DataFrame)
    X = saved.X.iloc[:40]
    assert X["Cabin"].isna().any() and X["Embarked"].isna().any() and X["Age"].isna().any()
    nulls = X.astype(object).where(X.notna(), None)
    split = {"columns": list(X.columns), "data": nulls.values.tolist()}
    nan_split = json.loads(X.to_json(orient="split", index=False))  # NaN written as null
    with_nan = {"columns": list(X.columns), "data": X.astype(object).values.tolist()}
    bodies: dict[str, tuple[Any, str]] = {
        "dataframe_split, null": ({"dataframe_split": split}, "application/json"),
        "dataframe_split, NaN": (json.dumps({"dataframe_split": with_nan}).encode(),
                                 "application/json"),
        "pandas to_json split": ({"dataframe_split": nan_split}, "application/json"),
        "dataframe_records": ({"dataframe_records": nulls.to_dict(orient="records")},
                              "application/json"),
        "records without the optional keys": (
            {"dataframe_records": [{k: v for k, v in r.items() if v is not None}
                                   for r in nulls.to_dict(orient="records")]},
            "application/json"),
        "instances": ({"instances": nulls.to_dict(orient="records")}, "application/json"),
        "inputs as columns": ({"inputs": nulls.to_dict(orient="list")}, "application/json"),
        "input example": ((saved.path / "serving_input_example.json").read_bytes(),
                          "application/json"),
        "csv with empty cells": (X.to_csv(index=False).encode(), "text/csv"),
    }
    expected = saved.predict(X).tolist()
    for name, (body, content_type) in bodies.items():
        mlflow_status, mlflow_answer = post(theirs, body, content_type)
        assert mlflow_status == 200, (name, mlflow_answer)
        if name in ("instances", "inputs as columns"):
            # MLflow turns these into lists per column first, and with missing values the
            # model then sees other values than the rows hold (its server warns of "schema
            # changes"); ours are the pipeline's own answers, as for dataframe_records.
            assert post(ours, body, content_type) == (200, {"predictions": expected}), name
            continue
        assert post(ours, body, content_type) == (200, mlflow_answer), name
    assert post(ours, {"dataframe_split": split})[1]["predictions"] == expected


def test_numbers_and_booleans_in_string_columns_get_mlflows_answer(titanic_both) -> None:
    """MLflow hands a string column's values to the model as they came; this pipeline's
    encoder (handle_unknown="ignore") scores a number or a boolean as an unknown category."""
    ours, theirs, saved = titanic_both
    assert isinstance(saved.X, pd.DataFrame)
    X = saved.X.iloc[:4].astype(object)
    X = X.where(X.notna(), None)
    X.loc[X.index[0], "Embarked"] = 5
    X.loc[X.index[1], "Cabin"] = True
    X.loc[X.index[2], "Sex"] = 2.5
    bodies = {
        "dataframe_split": {"dataframe_split": {"columns": list(X.columns),
                                                "data": X.values.tolist()}},
        "dataframe_records": {"dataframe_records": X.to_dict(orient="records")},
    }
    for name, body in bodies.items():
        mlflow_status, mlflow_answer = post(theirs, body)
        assert mlflow_status == 200, (name, mlflow_answer)
        assert post(ours, body) == (200, mlflow_answer), name
    # A nested list is no column value: MLflow's model call fails on it, we say which it is.
    X.loc[X.index[3], "Sex"] = ["male"]
    nested = {"dataframe_records": X.to_dict(orient="records")}
    mlflow_status, _ = post(theirs, nested)
    status, answer = post(ours, nested)
    assert mlflow_status == status == 400, (mlflow_status, status)
    assert answer["message"] == "column 'Sex', row 4: ['male'] is a nested list, not a string"


def strict_categories(path: Path) -> SavedModel:
    """A signed pipeline whose encoder refuses categories it was not fitted on."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from tests.models import _save

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"city": rng.choice(["paris", "lyon"], 60).astype(object),
                      "size": rng.normal(size=60)})
    y = (X["city"] == "paris").astype("int64")
    model = make_pipeline(ColumnTransformer([("city", OneHotEncoder(), ["city"])],
                                            remainder="passthrough"),
                          LogisticRegression()).fit(X, y)
    _save(model, path, X, model.predict(X), serialization_format="pickle")
    return SavedModel(path, model, X)


def test_a_category_the_model_never_saw_is_the_requests_fault_as_in_mlflow(tmp_path) -> None:
    """Its encoder raises "Found unknown categories": MLflow answers 400, and so do we, not a
    500 that would count against the endpoint's 5xx alarm and roll a healthy model back."""
    saved = strict_categories(tmp_path / "model")
    with serving(saved.path, tmp_path, workers=1) as server, \
            mlflow_serving(saved.path, tmp_path / "mlflow.log") as theirs:
        ours = f"{server.url}/invocations"
        known = {"dataframe_records": [{"city": "lyon", "size": 0.1}]}
        assert post(ours, known) == post(theirs, known) == (200, {"predictions": [0]})
        for city in ("rome", 5):
            body = {"dataframe_records": [{"city": "lyon", "size": 0.1},
                                          {"city": city, "size": 0.2}]}
            mlflow_status, _ = post(theirs, body)
            status, answer = post(ours, body)
            assert mlflow_status == status == 400, (city, mlflow_status, answer)
            assert answer["message"].startswith(
                f"the model cannot take this input: ValueError: Found unknown categories "
                f"[{city!r}]"), answer


def nullable_flag(path: Path) -> SavedModel:
    """A signed pipeline fitted on a boolean column with missing values (signature:
    ``flag: boolean (optional)``), imputing them as its training did."""
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    from tests.models import _save

    rng = np.random.default_rng(0)
    flag = rng.choice([True, False], 80, p=[0.7, 0.3]).astype(object)
    flag[::6] = np.nan
    X = pd.DataFrame({"flag": flag, "size": rng.normal(size=80)})
    y = ((X["flag"] == False) | (X["size"] > 1.2)).astype("int64")  # noqa: E712
    flags = make_pipeline(SimpleImputer(strategy="most_frequent"),
                          OneHotEncoder(handle_unknown="ignore"))
    model = make_pipeline(ColumnTransformer([("flag", flags, ["flag"])],
                                            remainder="passthrough"),
                          LogisticRegression(C=100)).fit(X, y)
    _save(model, path, X, model.predict(X), serialization_format="pickle")
    return SavedModel(path, model, X)


def test_missing_values_in_a_boolean_column_are_accepted_and_scored_as_pyfunc_does(
        tmp_path) -> None:
    """Issue 13.1: a model fitted on a nullable flag deploys (its smoke slice holds NaN), and
    every request MLflow's server accepts is answered. The answer is pyfunc's on the rows,
    missing flags imputed as in training; MLflow's server casts the column to bool first and
    scores a null as False (a known, documented difference)."""
    import io
    import json

    import mlflow.pyfunc

    saved = nullable_flag(tmp_path / "model")
    assert isinstance(saved.X, pd.DataFrame)
    X = saved.X.iloc[:24]
    assert X["flag"].isna().sum() >= 3 and set(saved.predict(X)) == {0, 1}
    expected = mlflow.pyfunc.load_model(str(saved.path)).predict(X).tolist()
    nulls = X.astype(object).where(X.notna(), None)
    bodies: dict[str, Any] = {
        "dataframe_split, null": {"dataframe_split": {"columns": list(X.columns),
                                                      "data": nulls.values.tolist()}},
        "dataframe_records, null": {"dataframe_records": nulls.to_dict(orient="records")},
        "records without the optional key": {"dataframe_records": [
            {k: v for k, v in r.items() if v is not None}
            for r in nulls.to_dict(orient="records")]},
        "pandas to_json split": {"dataframe_split": json.loads(
            X.to_json(orient="split", index=False))},
        "inputs as columns": {"inputs": nulls.to_dict(orient="list")},
    }
    with serving(saved.path, tmp_path, workers=1) as server, \
            mlflow_serving(saved.path, tmp_path / "mlflow.log") as theirs:
        ours = f"{server.url}/invocations"
        for name, body in bodies.items():
            mlflow_status, mlflow_answer = post(theirs, body)
            assert mlflow_status == 200, (name, mlflow_answer)
            assert post(ours, body) == (200, {"predictions": expected}), name
        # MLflow's answer differs exactly on rows whose flag is missing.
        _, mlflow_answer = post(theirs, bodies["dataframe_split, null"])
        differing = {i for i, (a, b) in enumerate(zip(mlflow_answer["predictions"], expected,
                                                      strict=True)) if a != b}
        assert differing and differing <= set(np.flatnonzero(X["flag"].isna().to_numpy()))
        csv = X.to_csv(index=False)
        assert "\n," in csv  # empty flag cells
        assert post(ours, csv.encode(), "text/csv") == (
            200, {"predictions": saved.predict(pd.read_csv(io.StringIO(csv))).tolist()})
        bad = {"dataframe_split": {"columns": ["flag", "size"], "data": [["maybe", 0.1]]}}
        status, answer = post(ours, bad)
        assert (status, answer["message"]) == (
            400, "column 'flag', row 1: 'maybe' is not a boolean")
