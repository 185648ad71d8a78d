"""The benchmark's model and data, made once and reused: a random forest of 50 trees on 20
float features (as in issue 7), saved as MLflow models with skops and with cloudpickle, and
CSV files of 100k, 1M and 10M rows written at full float precision (389 bytes a row)."""

from __future__ import annotations

import json
from pathlib import Path

from benchmarks.common import WORK, note

FEATURES = [f"f{i}" for i in range(20)]
TRUSTED = ["sklearn.ensemble._forest.RandomForestClassifier",
           "sklearn.tree._classes.DecisionTreeClassifier", "sklearn.tree._tree.Tree"]
PIP = ["scikit-learn==1.9.1", "skops==0.16.0", "pandas==3.1.1"]


def models() -> dict[str, Path]:
    """``{"skops": dir, "cloudpickle": dir}``: the same forest in both formats."""
    folders = {fmt: WORK / f"model-{fmt}" for fmt in ("skops", "cloudpickle")}
    if all((f / "MLmodel").is_file() for f in folders.values()):
        return folders
    note("training the benchmark forest (50 trees, 20 features)")
    import shutil

    import mlflow.sklearn
    from mlflow.models import infer_signature

    estimator, X = train()
    signature = infer_signature(X, estimator.predict(X))
    for fmt, folder in folders.items():
        shutil.rmtree(folder, ignore_errors=True)
        extra = {"skops_trusted_types": TRUSTED} if fmt == "skops" else {}
        mlflow.sklearn.save_model(estimator, str(folder), serialization_format=fmt,
                                  signature=signature, input_example=X.head(3),
                                  pip_requirements=PIP, **extra)
    return folders


def train():  # type: ignore[no-untyped-def]
    import pandas as pd
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_classification(n_samples=20_000, n_features=20, n_informative=10,
                               random_state=0)
    frame = pd.DataFrame(X, columns=FEATURES)
    estimator = RandomForestClassifier(n_estimators=50, random_state=0, n_jobs=-1).fit(frame, y)
    estimator.n_jobs = None  # as a model is usually saved: predict on one core
    return estimator, frame


def csv(rows: int) -> Path:
    path = WORK / f"rows-{rows}.csv"
    if path.is_file() and path.stat().st_size > rows * 300:
        return path
    note(f"writing {rows:,} rows to {path.name}")
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(rows)
    partial = path.with_suffix(".partial")
    with pacsv.CSVWriter(partial, pa.schema([(c, pa.float64()) for c in FEATURES])) as writer:
        for start in range(0, rows, 500_000):
            block = rng.standard_normal((min(500_000, rows - start), len(FEATURES))) * 2
            writer.write_table(pa.table({c: block[:, i] for i, c in enumerate(FEATURES)}))
    partial.rename(path)
    return path


def one_row_request() -> bytes:
    row = [round(0.1 * i - 1, 3) for i in range(len(FEATURES))]
    return json.dumps({"dataframe_split": {"columns": FEATURES, "data": [row]}}).encode()
