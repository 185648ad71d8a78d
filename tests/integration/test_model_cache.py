"""The local model cache under concurrency: threads and processes that download one registered
version at once all get a complete model folder (13.8: the loser's rename used to fail with
"Directory not empty")."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from pathlib import Path

import pytest

from mlops_control import local_models
from mlops_control.model_loader import load_model
from tests.conftest import REPO

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def registered(mlflow_server, shelf) -> tuple[str, str]:
    """A real registered version on the session's MLflow server (the shelf's forest)."""
    import mlflow

    name = f"cache-{uuid.uuid4().hex[:8]}"
    client = mlflow.MlflowClient(mlflow_server.url)
    client.create_registered_model(name)
    experiment = client.create_experiment(name)
    run = client.create_run(experiment)
    client.log_artifacts(run.info.run_id, str(shelf.forest().path), "model")
    source = f"{run.info.artifact_uri}/model"
    mv = client.create_model_version(name, source, run_id=run.info.run_id)
    return name, str(mv.version)


DOWNLOAD = """
import sys
from pathlib import Path
from mlops_control import local_models
from mlops_control.registry import RegistryClient
from mlops_control.model_loader import load_model
url, models, name, version = sys.argv[1:]
folder = local_models.download(RegistryClient(url), Path(models), name, version)
load_model(folder)
print(folder)
"""


def test_many_threads_and_two_processes_downloading_one_model_all_get_it(
        mlflow_server, registered, tmp_path: Path) -> None:
    name, version = registered
    models = tmp_path / "models"
    procs = [subprocess.Popen([sys.executable, "-c", DOWNLOAD, mlflow_server.url, str(models),
                               name, version], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    start = threading.Barrier(8)
    results: list[Path] = []
    errors: list[BaseException] = []

    def download() -> None:
        start.wait()
        try:
            folder = local_models.download(mlflow_server.client, models, name, version)
            load_model(folder)
            results.append(folder)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=download) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    outputs = [proc.communicate(timeout=120) for proc in procs]

    assert errors == []
    assert results == [models / name / version] * 8
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert out.strip() == str(models / name / version)
    # Only the one model folder is left: every losing download cleaned up after itself.
    assert sorted(p.name for p in (models / name).iterdir()) == [version]
    assert (models / name / version / "MLmodel").is_file()
