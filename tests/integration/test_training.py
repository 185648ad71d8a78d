"""Training through the shared image's entrypoint, exactly as a SageMaker job runs it, against
a real MLflow server."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_control import local_training, names
from mlops_control.sm_layout import MLRoot
from tests.conftest import PROJECTS, make_settings

pytestmark = pytest.mark.integration


def test_training_registers_a_version_with_lineage_and_a_smoke_test_slice(mlflow_server, trained):
    client = mlflow_server.client
    (version,) = trained["versions"]
    mv = client.get_model_version("test-project", version)
    assert mv.tags[names.TAG_LINEAGE_TRIGGER] == "manual"
    assert mv.tags[names.TAG_LINEAGE_DATA_LOCATION] == "bundled"
    assert mv.tags[names.TAG_LINEAGE_TRAINING_JOB].startswith("test-project-")
    assert mv.tags[names.TAG_LINEAGE_CODE_REVISION] not in ("", "unknown")
    assert trained["metrics"]["accuracy"] > 0.85
    smoke = json.loads(client.run_artifact(mv.run_id, names.SMOKE_TEST_ARTIFACT))
    assert len(smoke["dataframe_split"]["data"]) == 40
    run = client.get_run(mv.run_id)
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params["n_estimators"] == "50" and run["info"]["status"] == "FINISHED"
    # SageMaker uploads <root>/model as the job's output: it must be a loadable MLflow model.
    assert (Path(trained["job_dir"]) / "model" / "MLmodel").is_file()


def run_container(root: Path, hyper: dict | None, tracking_uri: str, projects: Path = PROJECTS,
                  test_env: str = "True", channel_files: dict[str, str] | None = None):
    ml_root = MLRoot(root)
    if hyper is not None:
        ml_root.prepare_training(hyper)
    for name, text in (channel_files or {}).items():
        ml_root.channel().mkdir(parents=True, exist_ok=True)
        (ml_root.channel() / name).write_text(text)
    env = {**os.environ, names.ENV_ML_ROOT: str(root), names.ENV_PROJECTS_DIR: str(projects),
           "MLFLOW_TRACKING_URI": tracking_uri, "TEST_ENV": test_env}
    completed = subprocess.run([sys.executable, "-m", "mlops_control.container", "train"],
                               env=env, capture_output=True, text=True, timeout=300)
    return completed, ml_root


def test_a_job_without_a_project_fails_and_says_why_in_the_failure_file(tmp_path, mlflow_server):
    completed, ml_root = run_container(tmp_path / "ml", {"n_estimators": "5"}, mlflow_server.url)
    assert completed.returncode == 1
    assert "does not say which project to train" in ml_root.failure_file.read_text()


def test_a_project_breaking_the_contract_fails_before_anything_is_registered(tmp_path, mlflow_server):
    projects = tmp_path / "projects"
    shutil.copytree(PROJECTS / "test-project", projects / "broken-contract")
    (projects / "broken-contract" / "MLproject").write_text(
        (PROJECTS / "test-project" / "MLproject").read_text().replace("test-project", "broken-contract"))
    (projects / "broken-contract" / "data.py").write_text("def get_data(limit):\n    return [], []\n")
    completed, ml_root = run_container(tmp_path / "ml", {"project": "broken-contract"},
                                       mlflow_server.url, projects=projects, test_env="False")
    assert completed.returncode == 1
    assert ml_root.failure_file.read_text() == (
        "project 'broken-contract': data.py: get_data() must take no arguments, "
        "but it requires limit")
    assert not _exists(mlflow_server, "broken-contract")


def _exists(server, name: str) -> bool:
    return name in server.client.registered_model_names()


def test_a_crashing_train_py_registers_nothing_and_marks_the_run_failed(tmp_path, mlflow_server):
    projects = tmp_path / "projects"
    shutil.copytree(PROJECTS / "test-project", projects / "crashing-project")
    mlproject = projects / "crashing-project" / "MLproject"
    mlproject.write_text(mlproject.read_text().replace("test-project", "crashing-project"))
    (projects / "crashing-project" / "train.py").write_text(
        "import mlflow\nwith mlflow.start_run():\n    mlflow.log_param('a', 1)\n"
        "    raise MemoryError('out of memory while fitting')\n")
    completed, ml_root = run_container(tmp_path / "ml", {"project": "crashing-project"},
                                       mlflow_server.url, projects=projects, test_env="False")
    assert completed.returncode == 1
    assert "MemoryError: out of memory while fitting" in ml_root.failure_file.read_text()
    assert not _exists(mlflow_server, "crashing-project")
    import mlflow

    mlflow.set_tracking_uri(mlflow_server.url)
    runs = mlflow.search_runs(experiment_names=["crashing-project"], output_format="list")
    assert [r.info.status for r in runs] == ["FAILED"]


def test_test_env_trains_on_the_slice_and_registers_nothing(tmp_path, mlflow_server):
    before = len(mlflow_server.client.model_versions("test-project")) if _exists(
        mlflow_server, "test-project") else 0
    completed, ml_root = run_container(tmp_path / "ml", {"project": "test-project",
                                                         "n_estimators": "3"},
                                       mlflow_server.url, test_env="True")
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads((ml_root.output_dir / "result.json").read_text())
    assert result["versions"] == [] and result["metrics"]["training_rows"] < 40
    after = len(mlflow_server.client.model_versions("test-project")) if _exists(
        mlflow_server, "test-project") else 0
    assert after == before


def test_data_in_the_training_channel_is_what_the_job_trains_on(tmp_path, mlflow_server):
    import importlib.util

    spec = importlib.util.spec_from_file_location("tp_data", PROJECTS / "test-project" / "data.py")
    data = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(data)
    frame = data.bundled().head(120)
    completed, ml_root = run_container(
        tmp_path / "ml", {"project": "test-project", "n_estimators": "3"}, mlflow_server.url,
        test_env="False", channel_files={"drop.csv": frame.to_csv(index=False)})
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads((ml_root.output_dir / "result.json").read_text())
    assert result["metrics"]["training_rows"] == 90.0  # 75% of the 120 rows dropped in
    mv = mlflow_server.client.get_model_version("test-project", result["versions"][0])
    assert mv.tags[names.TAG_LINEAGE_DATA_LOCATION].endswith("input/data/training")


def test_a_training_that_outlives_its_timeout_is_stopped_and_reported(tmp_path, mlflow_server):
    projects = tmp_path / "projects"
    shutil.copytree(PROJECTS / "test-project", projects / "slow-project")
    mlproject = projects / "slow-project" / "MLproject"
    mlproject.write_text(mlproject.read_text().replace("test-project", "slow-project"))
    (projects / "slow-project" / "train.py").write_text("import time\ntime.sleep(120)\n")
    settings = make_settings(tmp_path / "state", projects_dir=projects)
    with pytest.raises(local_training.TrainingFailed) as err:
        local_training.run(settings, mlflow_server.url, local_training.LocalTrainingJob(
            project="slow-project", timeout_s=8), quiet=True)
    assert "timed out after 8s" in err.value.reason
    assert not _exists(mlflow_server, "slow-project")
