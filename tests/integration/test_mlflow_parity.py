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
