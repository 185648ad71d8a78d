"""A titanic-like sklearn Pipeline: string columns with missing values (NaN and None), imputed
and one-hot encoded, logged with a signature inferred from that data (so its string and
double columns with gaps are optional). The kind of model issue 13 deployed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from tests.models import PIP, SavedModel


def frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    cabin = rng.choice(np.array(["C85", "B42", "E31", None], dtype=object), n)
    cabin[rng.random(n) < 0.3] = np.nan
    embarked = pd.Series(rng.choice(["S", "C", "Q"], n), dtype=object)
    return pd.DataFrame({
        "Pclass": rng.integers(1, 4, n).astype("int64"),
        "Sex": rng.choice(["male", "female"], n).astype(object),
        "Age": np.where(rng.random(n) < 0.2, np.nan, rng.uniform(1, 80, n)),
        "Fare": rng.uniform(5, 100, n),
        "Cabin": cabin,
        "Embarked": embarked.where(rng.random(n) > 0.1, np.nan),
    })


def titanic(path: Path) -> SavedModel:
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    X = frame()
    y = ((X["Sex"] == "female") | (X["Pclass"] == 1) | X["Cabin"].isna()).astype("int64")
    strings = make_pipeline(SimpleImputer(strategy="constant", fill_value="missing"),
                            OneHotEncoder(handle_unknown="ignore"))
    model = make_pipeline(
        ColumnTransformer([("strings", strings, ["Sex", "Cabin", "Embarked"]),
                           ("numbers", SimpleImputer(strategy="median"),
                            ["Pclass", "Age", "Fare"])]),
        LogisticRegression(max_iter=500)).fit(X, y)
    mlflow.sklearn.save_model(model, str(path), signature=infer_signature(X, model.predict(X)),
                              input_example=X.head(3), pip_requirements=PIP,
                              serialization_format="pickle")
    return SavedModel(path, model, X)
