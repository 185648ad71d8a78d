"""Real model versions on the session's MLflow server, from model folders saved on disk."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from pathlib import Path

import mlflow

UNIDECODE_MODEL = Path(__file__).with_name("unidecode_model.py")


def register_folder(url: str, name: str, folder: Path) -> str:
    """Upload ``folder`` (an MLflow model) as a run's artifact and register it as a new
    version of ``name``; returns the version."""
    client = mlflow.MlflowClient(url)
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    experiments = client.search_experiments(filter_string=f"name = '{name}'")
    experiment = experiments[0].experiment_id if experiments else client.create_experiment(name)
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, str(folder), "model")
    mv = client.create_model_version(name, f"{run.info.artifact_uri}/model",
                                     run_id=run.info.run_id)
    return str(mv.version)


def save_unidecode_model(path: Path, requirements: list[str]) -> Path:
    """The custom pyfunc of tests/unidecode_model.py with the given pip requirements."""
    import pandas as pd
    from mlflow.models import infer_signature

    spec = importlib.util.spec_from_file_location("unidecode_model", UNIDECODE_MODEL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["unidecode_model"] = module  # pickled by reference under this name
    spec.loader.exec_module(module)
    X = pd.DataFrame({"x": [1.0, 2.0, 3.0]})
    mlflow.pyfunc.save_model(str(path), python_model=module.Model(),
                             code_paths=[str(UNIDECODE_MODEL)], pip_requirements=requirements,
                             signature=infer_signature(X, [11, 12, 13]))
    return path


def fresh_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
