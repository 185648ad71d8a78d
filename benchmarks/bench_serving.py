"""Serving: our scoring server and `mlflow models serve`, both running, loaded in turn with
single-row JSON requests at each concurrency, repeated; and the bare in-process predict of
one row, the floor that a single request cannot beat."""

from __future__ import annotations

import statistics
import timeit
from pathlib import Path
from typing import Any

from benchmarks import fixtures
from benchmarks.common import PYTHON, WORK, median, note, server, settle
from benchmarks.loadgen import run_load
from mlops_control import procs


def run(model_dir: Path, reps: int, duration: float, warmup: float, settle_s: float,
        concurrencies: tuple[int, ...] = (1, 8, 32)) -> dict[str, Any]:
    body = fixtures.one_row_request()
    ports = {"ours": procs.free_port(), "mlflow": procs.free_port()}
    commands = {
        "ours": [PYTHON, "-m", "mlops_control.serving", str(model_dir),
                 "--port", str(ports["ours"])],
        "mlflow": [PYTHON, "-m", "mlflow", "models", "serve", "-m", str(model_dir),
                   "--env-manager", "local", "-h", "127.0.0.1", "-p", str(ports["mlflow"])],
    }
    runs: list[dict[str, Any]] = []
    bare: list[dict[str, float]] = []
    note("starting both servers")
    with server(commands["ours"], ports["ours"], WORK / "logs" / "ours-serve.log"), \
            server(commands["mlflow"], ports["mlflow"], WORK / "logs" / "mlflow-serve.log"):
        for rep in range(reps):
            order = ["ours", "mlflow"] if rep % 2 == 0 else ["mlflow", "ours"]
            for concurrency in concurrencies:
                for name in order:
                    others = settle(settle_s)
                    result = run_load("127.0.0.1", ports[name], body, concurrency, duration,
                                      warmup)
                    note(f"serving rep {rep} {name} c={concurrency}: {result['rps']} req/s, "
                         f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms")
                    runs.append({"server": name, "rep": rep, "busy_before": others, **result})
            bare.append(bare_predict(model_dir))
    summary: dict[str, Any] = {}
    for name in commands:
        summary[name] = {}
        for concurrency in concurrencies:
            mine = [r for r in runs if r["server"] == name and r["concurrency"] == concurrency]
            summary[name][str(concurrency)] = {
                key: median([r[key] for r in mine])
                for key in ("rps", "p50_ms", "p99_ms", "errors")}
    shown = {k: " ".join(v[1:]).replace(str(model_dir), "<model>").replace(
        str(ports[k]), "<port>") for k, v in commands.items()}
    return {
        "commands": {k: f"python {v}" for k, v in shown.items()},
        "request": "one row of 20 doubles as dataframe_split JSON",
        "duration_s": duration, "reps": reps,
        "bare_predict_ms": {k: median([b[k] for b in bare]) for k in bare[0]},
        "summary": summary, "runs": runs,
    }


def bare_predict(model_dir: Path) -> dict[str, float]:
    """Milliseconds for ``estimator.predict`` of one row, in this process: with a one-row
    DataFrame (how the model was fitted) and with a one-row matrix (the faster of the two)."""
    import warnings

    import numpy as np
    import pandas as pd

    from mlops_control.model_loader import load_model

    estimator = load_model(model_dir).raw
    one = pd.DataFrame([np.linspace(-1, 1, len(fixtures.FEATURES))], columns=fixtures.FEATURES)
    matrix = one.to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "X does not have valid feature names"
        timings = {
            "dataframe": timeit.repeat(lambda: estimator.predict(one), number=1, repeat=300),
            "matrix": timeit.repeat(lambda: estimator.predict(matrix), number=1, repeat=300),
        }
    return {k: round(statistics.median(v) * 1000, 3) for k, v in timings.items()}
