"""Model files: how long ``mlflow.sklearn.log_model`` takes with and without the pip
requirements given, and how long loading takes with skops against cloudpickle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from benchmarks.common import PYTHON, WORK, measure, median, note

# Runs in a fresh process: the forest is loaded, one untimed log warms the tracking store up,
# then each variant is timed in turn, ``reps`` times.
LOGGING = """
import json, sys, time, warnings
warnings.simplefilter("ignore")
import mlflow, mlflow.sklearn
import numpy as np, pandas as pd
from mlflow.models import infer_signature
from mlops_control.model_loader import load_model
from benchmarks import fixtures

model_dir, reps = sys.argv[1], int(sys.argv[2])
estimator = load_model(model_dir).raw
X = pd.DataFrame(np.random.default_rng(0).normal(size=(50, 20)), columns=fixtures.FEATURES)
signature = infer_signature(X, estimator.predict(X))
common = dict(name="model", signature=signature, input_example=X.head(3))
variants = {
    "skops, requirements inferred (MLflow's default)": dict(
        serialization_format="skops", skops_trusted_types=fixtures.TRUSTED),
    "skops, requirements given": dict(
        serialization_format="skops", skops_trusted_types=fixtures.TRUSTED,
        pip_requirements=fixtures.PIP),
    "cloudpickle, requirements given": dict(
        serialization_format="cloudpickle", pip_requirements=fixtures.PIP),
}
mlflow.set_experiment("bench-logging")
with mlflow.start_run():
    mlflow.sklearn.log_model(estimator, **common, **variants["cloudpickle, requirements given"])
times = {name: [] for name in variants}
for _ in range(reps):
    for name, kwargs in variants.items():
        with mlflow.start_run():
            started = time.perf_counter()
            mlflow.sklearn.log_model(estimator, **common, **kwargs)
            times[name].append(time.perf_counter() - started)
print("RESULT " + json.dumps(times))
"""

LOADING = """
import json, sys, time
started = time.perf_counter()
from mlops_control.model_loader import load_model
first = load_model(sys.argv[1])
cold = time.perf_counter() - started
again = load_model(sys.argv[1])
print("RESULT " + json.dumps({"cold_s": cold, "deserialise_s": again.load_seconds}))
"""


def logging(model_dir: Path, reps: int) -> dict[str, Any]:
    store = WORK / "tracking"
    store.mkdir(parents=True, exist_ok=True)
    result = measure([PYTHON, "-c", LOGGING, str(model_dir), str(reps)], cwd=store,
                     extra_env={"MLFLOW_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}"})
    times: dict[str, list[float]] = _result(result.output)
    note("log_model: " + ", ".join(f"{k} {median(v)} s" for k, v in times.items()))
    return {"seconds": {k: median(v) for k, v in times.items()}, "runs": times}


def loading(models: dict[str, Path], reps: int) -> dict[str, Any]:
    runs: dict[str, list[dict[str, float]]] = {fmt: [] for fmt in models}
    for _ in range(reps):
        for fmt, folder in models.items():
            runs[fmt].append(_result(measure([PYTHON, "-c", LOADING, str(folder)]).output))
    summary = {fmt: {key: median([r[key] for r in rs]) for key in ("cold_s", "deserialise_s")}
               for fmt, rs in runs.items()}
    note(f"model load: {summary}")
    sizes = {fmt: round(sum(f.stat().st_size for f in folder.glob("model.*")) / 2**20, 1)
             for fmt, folder in models.items()}
    return {"seconds": summary, "file_mb": sizes}


def _result(output: str) -> Any:
    line = next(x for x in output.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))
