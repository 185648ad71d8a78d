"""Training: test-project's train.py run directly, through the shared training entrypoint
(``python -m mlops_control.container train``, as a SageMaker job runs it), and through
``mlflow run --env-manager local``; all against the same local MLflow server, each registering
a version, in turn."""

from __future__ import annotations

import shutil
from typing import Any

from benchmarks.common import PYTHON, REPO, WORK, measure, median, note
from mlops_control import names, procs
from mlops_control.local_server import LocalMLflow
from mlops_control.settings import Settings
from mlops_control.sm_layout import MLRoot

PROJECT = REPO / "projects" / "test-project"


def run(reps: int) -> dict[str, Any]:
    state = WORK / "training-state"
    shutil.rmtree(state, ignore_errors=True)
    settings = Settings(state_dir=state, projects_dir=REPO / "projects", tracking_uri=None,
                        env_manager="local", mlflow_port=procs.free_port(),
                        receiver_port=procs.free_port())
    mlflow_server = LocalMLflow(settings)
    note("starting a local MLflow server for the training runs")
    uri = mlflow_server.start()
    tracking = {names.ENV_TRACKING_URI: uri, "MLFLOW_EXPERIMENT_NAME": "test-project"}
    runs: dict[str, list[float]] = {"train.py": [], "entrypoint": [], "mlflow run": []}
    try:
        for rep in range(reps):
            root = MLRoot(state / f"job-{rep}")
            root.prepare_training({"project": "test-project"})
            commands = {
                "train.py": ([PYTHON, "train.py"], PROJECT, tracking),
                "entrypoint": ([PYTHON, "-m", "mlops_control.container", "train"], REPO,
                               {**tracking, names.ENV_ML_ROOT: str(root.root),
                                names.ENV_PROJECTS_DIR: str(REPO / "projects")}),
                "mlflow run": ([PYTHON, "-m", "mlflow", "run", str(PROJECT), "--env-manager",
                                "local", "--experiment-name", "test-project"], REPO, tracking),
            }
            order = list(commands)[rep % 3:] + list(commands)[:rep % 3]
            for name in order:
                argv, cwd, extra = commands[name]
                seconds = measure(argv, cwd=cwd, extra_env=extra).seconds
                note(f"training rep {rep} {name}: {seconds} s")
                runs[name].append(seconds)
    finally:
        mlflow_server.stop()
    seconds = {k: median(v) for k, v in runs.items()}
    return {
        "seconds": seconds,
        "entrypoint_overhead_s": round(seconds["entrypoint"] - seconds["train.py"], 3),
        "mlflow_run_overhead_s": round(seconds["mlflow run"] - seconds["train.py"], 3),
        "runs": runs,
    }
