"""Small MLflow model folders for the serving and batch tests, saved the way train.py saves
test-project (``mlflow.sklearn.save_model`` with a signature and an input example), each in
one of the shapes the scoring code must handle."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# Given, so that saving takes milliseconds instead of seconds of requirement inference.
PIP = ["scikit-learn==1.9.1"]
FOREST_TYPES = [
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree",
]


@dataclass
class SavedModel:
    path: Path
    estimator: Any
    X: pd.DataFrame | np.ndarray
    """Rows the model was fitted on (handy requests)."""

    def predict(self, X: Any) -> np.ndarray:
        return np.asarray(self.estimator.predict(X))


def breast_cancer() -> tuple[pd.DataFrame, pd.Series]:
    """The data test-project trains on, with its snake_case column names."""
    import re

    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame = frame.rename(columns=lambda c: re.sub(r"[^0-9a-z]+", "_", c.lower()).strip("_"))
    return frame.drop(columns=["target"]).astype("float64"), frame["target"].astype("int64")


def _save(estimator: Any, path: Path, X: Any, y_pred: Any, **kwargs: Any) -> None:
    import mlflow.sklearn
    from mlflow.models import infer_signature

    example = X[:3] if isinstance(X, np.ndarray) else X.head(3)
    mlflow.sklearn.save_model(estimator, str(path), signature=infer_signature(X, y_pred),
                              input_example=example, pip_requirements=PIP, **kwargs)


def forest(path: Path, seed: int = 0, trees: int = 10) -> SavedModel:
    """test-project's kind of model: a random forest fitted on a DataFrame of 30 doubles,
    saved with skops and explicit trusted types."""
    from sklearn.ensemble import RandomForestClassifier

    X, y = breast_cancer()
    model = RandomForestClassifier(n_estimators=trees, max_depth=6, random_state=seed).fit(X, y)
    _save(model, path, X, model.predict(X), serialization_format="skops",
          skops_trusted_types=FOREST_TYPES)
    return SavedModel(path, model, X)


def constant(path: Path, value: int) -> SavedModel:
    """Same columns as :func:`forest`, but always answers ``value``: a swap is visible."""
    from sklearn.dummy import DummyClassifier

    X, _ = breast_cancer()
    y = np.full(len(X), value)
    y[0] = value + 1  # a classifier needs two classes to be fitted
    model = DummyClassifier(strategy="constant", constant=value).fit(X, y)
    _save(model, path, X, model.predict(X), serialization_format="skops",
          skops_trusted_types=["sklearn.dummy.DummyClassifier"])
    return SavedModel(path, model, X)


def probabilities(path: Path) -> SavedModel:
    """A forest logged with pyfunc_predict_fn="predict_proba": two values per row."""
    from sklearn.ensemble import RandomForestClassifier

    X, y = breast_cancer()
    model = RandomForestClassifier(n_estimators=5, max_depth=4, random_state=1).fit(X, y)
    _save(model, path, X, model.predict_proba(X), serialization_format="cloudpickle",
          pyfunc_predict_fn="predict_proba")

    class Proba(SavedModel):
        def predict(self, X: Any) -> np.ndarray:
            return np.asarray(self.estimator.predict_proba(X))

    return Proba(path, model, X)


def mixed(path: Path) -> SavedModel:
    """A pipeline over long, boolean, string and double columns (pickled)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    n = 200
    X = pd.DataFrame({
        "age": rng.integers(18, 90, n).astype("int64"),
        "member": rng.integers(0, 2, n).astype(bool),
        "city": rng.choice(["paris", "lyon", "nice"], n).astype(object),
        "score": rng.normal(size=n),
    })
    y = ((X["age"] > 50) ^ X["member"]).astype("int64")
    model = make_pipeline(
        ColumnTransformer([("city", OneHotEncoder(handle_unknown="ignore"), ["city"])],
                          remainder="passthrough"),
        LogisticRegression(max_iter=500),
    ).fit(X, y)
    _save(model, path, X, model.predict(X), serialization_format="pickle")
    return SavedModel(path, model, X)


def tensor(path: Path) -> SavedModel:
    """A forest fitted on a bare numpy matrix: its signature is one float64 tensor (-1, 4)."""
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 4))
    y = (X[:, 0] > 0).astype("int64")
    model = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    _save(model, path, X, model.predict(X), serialization_format="cloudpickle")
    return SavedModel(path, model, X)


def fragile(path: Path) -> SavedModel:
    """A forest that raises on any row whose mean_radius is negative: a model bug that only
    some requests hit."""
    from tests.fragile import FragileForest

    X, y = breast_cancer()
    model = FragileForest().fit(X, y)
    _save(model, path, X, model.predict(X), serialization_format="cloudpickle")
    return SavedModel(path, model, X)


def slow(path: Path) -> SavedModel:
    """A forest that takes half a second per predict call."""
    from tests.fragile import SlowForest

    X, y = breast_cancer()
    model = SlowForest().fit(X, y)
    import mlflow.sklearn
    from mlflow.models import infer_signature

    # No input example: the warm-up would cost the tests half a second per worker.
    mlflow.sklearn.save_model(model, str(path), signature=infer_signature(X, y),
                              pip_requirements=PIP, serialization_format="cloudpickle")
    return SavedModel(path, model, X)


def unsigned(path: Path) -> SavedModel:
    """A forest logged without signature or input example: nothing to check inputs against."""
    import mlflow.sklearn
    from sklearn.ensemble import RandomForestClassifier

    X, y = breast_cancer()
    model = RandomForestClassifier(n_estimators=3, random_state=2).fit(X, y)
    mlflow.sklearn.save_model(model, str(path), pip_requirements=PIP,
                              serialization_format="cloudpickle")
    return SavedModel(path, model, X)


def broken(path: Path, source: Path) -> Path:
    """A copy of ``source`` whose serialised model is garbage: it cannot be loaded."""
    import shutil

    shutil.copytree(source, path)
    for file in path.glob("model.*"):
        file.write_bytes(b"not a model")
    return path


def split_request(X: pd.DataFrame, rows: slice = slice(0, 3)) -> dict[str, Any]:
    part = X.iloc[rows]
    return {"dataframe_split": {"columns": list(part.columns), "data": part.values.tolist()}}
