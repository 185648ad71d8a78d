"""Projects written as MLflow's own examples are (multi-line commands), and scripts that do not
register as asked, trained through the real path against a real MLflow server."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_control import local_training, names
from mlops_control.sm_layout import MLRoot
from tests.conftest import make_settings

pytestmark = pytest.mark.integration

# MLflow's examples/sklearn_elasticnet_wine style: a literal block with backslash continuations.
MLPROJECT = """name: {name}

python_env: python_env.yaml

entry_points:
  main:
    parameters:
      alpha: {{type: float, default: 0.5}}
      l1_ratio: {{type: float, default: 0.1}}
    command: |
      python train.py \\
        --alpha {{alpha}} \\
        --l1-ratio {{l1_ratio}}
"""
PYTHON_ENV = "python: '3.11'\ndependencies:\n  - mlflow==3.17.2\n  - scikit-learn==1.9.1\n"
DATA = """import os
from sklearn.datasets import load_diabetes


def get_data():
    X, y = load_diabetes(return_X_y=True, as_frame=True)
    if os.environ.get("TEST_ENV", "").lower() == "true":
        return X.head(30), y.head(30)
    return X, y
"""
TRAIN = """import argparse, os
import mlflow, mlflow.sklearn
from sklearn.linear_model import ElasticNet
from data import get_data

parser = argparse.ArgumentParser()
parser.add_argument("--alpha", type=float, required=True)
parser.add_argument("--l1-ratio", type=float, required=True)
args = parser.parse_args()
test_env = os.environ.get("TEST_ENV", "").lower() == "true"
X, y = get_data()
with mlflow.start_run():
    model = ElasticNet(alpha=args.alpha, l1_ratio=args.l1_ratio).fit(X, y)
    mlflow.log_params({{"alpha": args.alpha, "l1_ratio": args.l1_ratio}})
    mlflow.log_metric("r2", model.score(X, y))
    mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn==1.9.1"],
                             registered_model_name={registered})
"""


def write_project(root: Path, name: str, registered: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "MLproject").write_text(MLPROJECT.format(name=name))
    (folder / "python_env.yaml").write_text(PYTHON_ENV)
    (folder / "data.py").write_text(DATA)
    (folder / "train.py").write_text(TRAIN.format(registered=registered))
    return folder


def train(tmp_path: Path, server, name: str, register: bool = True):
    settings = make_settings(tmp_path / "state", projects_dir=tmp_path / "projects")
    return local_training.run(settings, server.url, local_training.LocalTrainingJob(
        project=name, register=register, params={"alpha": "0.3"}), quiet=True)


def test_a_multi_line_command_with_continuations_trains_and_registers(tmp_path, mlflow_server):
    write_project(tmp_path / "projects", "wine-elasticnet", "None if test_env else "
                  "'wine-elasticnet'")
    result = train(tmp_path, mlflow_server, "wine-elasticnet")
    assert len(result["versions"]) == 1
    run = mlflow_server.client.get_run(result["run_id"])
    params = {p["key"]: p["value"] for p in run["data"]["params"]}
    assert params == {"alpha": "0.3", "l1_ratio": "0.1"}


def test_a_script_registering_under_another_name_fails_and_leaves_no_stray(tmp_path,
                                                                          mlflow_server):
    write_project(tmp_path / "projects", "misnamed", "'someone-else'")
    with pytest.raises(local_training.TrainingFailed) as err:
        train(tmp_path, mlflow_server, "misnamed")
    assert ("train.py registered version 1 of 'someone-else', not of 'misnamed' (deleted it "
            "and the model it created); register under the project's name: "
            "registered_model_name='misnamed'") in err.value.reason
    assert "Traceback" not in err.value.reason
    assert "someone-else" not in mlflow_server.client.registered_model_names()


def test_register_true_with_a_script_that_never_registers_fails(tmp_path, mlflow_server):
    write_project(tmp_path / "projects", "never-registers", "None")
    with pytest.raises(local_training.TrainingFailed) as err:
        train(tmp_path, mlflow_server, "never-registers")
    assert ("train.py finished without registering a version of 'never-registers'; pass "
            "registered_model_name='never-registers'") in err.value.reason


def test_register_false_with_a_script_ignoring_test_env_fails_and_deletes_it(tmp_path,
                                                                           mlflow_server):
    write_project(tmp_path / "projects", "ignores-test-env", "'ignores-test-env'")
    with pytest.raises(local_training.TrainingFailed) as err:
        train(tmp_path, mlflow_server, "ignores-test-env", register=False)
    assert ("registered version 1 of 'ignores-test-env' although TEST_ENV=True asked it not "
            "to (deleted it and the model it created)") in err.value.reason
    assert "ignores-test-env" not in mlflow_server.client.registered_model_names()


def test_a_job_that_cannot_write_the_model_folder_fails_before_training_and_says_why(
        tmp_path, mlflow_server):
    # What a non-root image USER meets on SageMaker (/opt/ml mounted owned by root). These
    # tests run as root, whom permissions do not stop, so the model folder is made
    # unwritable for anyone: a file stands where the folder should be.
    write_project(tmp_path / "projects", "unwritable", "'unwritable'")
    ml_root = MLRoot(tmp_path / "ml")
    ml_root.prepare_training({"project": "unwritable"})
    ml_root.model_dir.rmdir()
    ml_root.model_dir.write_text("not a folder")
    env = {**os.environ, names.ENV_ML_ROOT: str(ml_root.root),
           names.ENV_PROJECTS_DIR: str(tmp_path / "projects"),
           "MLFLOW_TRACKING_URI": mlflow_server.url, "TEST_ENV": "False"}
    completed = subprocess.run([sys.executable, "-m", "mlops_control.container", "train"],
                               env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 1, completed.stderr[-2000:]
    failure = ml_root.failure_file.read_text()
    assert failure.startswith(f"cannot write {ml_root.model_dir} (File exists) as uid ")
    assert "the training image must run as a user that can write" in failure
    assert "unwritable" not in mlflow_server.client.registered_model_names()


def test_a_failure_is_still_reported_when_the_output_folder_is_not_writable(tmp_path, capsys):
    ml_root = MLRoot(tmp_path / "ml")
    ml_root.root.mkdir()
    (ml_root.root / "output").write_text("not a folder")
    assert ml_root.write_failure("training failed: boom") is False
    assert "failure: training failed: boom" in capsys.readouterr().err


def test_new_data_a_project_ignores_is_not_recorded_as_its_lineage(tmp_path, mlflow_server):
    # An inbox retrain: the data file is offered, but this project's get_data() never reads
    # MLOPS_DATA_LOCATION.
    write_project(tmp_path / "projects", "ignores-data", "None if test_env else 'ignores-data'")
    drop = tmp_path / "drop.csv"
    drop.write_text("a,b,target\n1,2,3\n")
    settings = make_settings(tmp_path / "state", projects_dir=tmp_path / "projects")
    result = local_training.run(settings, mlflow_server.url, local_training.LocalTrainingJob(
        project="ignores-data", data_location=str(drop), data_version="sha256:abc",
        trigger=names.Trigger.NEW_DATA), quiet=True)
    (version,) = result["versions"]
    tags = mlflow_server.client.get_model_version("ignores-data", version).tags
    assert tags[names.TAG_LINEAGE_DATA_NOT_READ] == str(drop)
    assert tags[names.TAG_LINEAGE_DATA_LOCATION] == "unknown"
    assert names.TAG_LINEAGE_DATA_VERSION not in tags
    assert result["warnings"] == [
        f"ignores-data did not read the data at {drop}: the run logs no dataset input or "
        "param naming it and opened no file under it; read $MLOPS_DATA_LOCATION in "
        "get_data() and log it with mlflow.log_input(mlflow.data.from_pandas(frame, "
        "source=location))"]


def test_new_data_a_project_reads_with_pandas_is_its_lineage(tmp_path, mlflow_server):
    folder = write_project(tmp_path / "projects", "reads-data",
                           "None if test_env else 'reads-data'")
    (folder / "data.py").write_text(
        "import os\nimport pandas as pd\n\n\ndef get_data():\n"
        "    frame = pd.read_csv(os.path.join(os.environ['MLOPS_DATA_LOCATION'], 'drop.csv'))\n"
        "    return frame.drop(columns=['target']), frame['target']\n")
    drop = tmp_path / "drop.csv"
    drop.write_text("a,b,target\n" + "".join(f"{i},{i * 2},{i * 3}\n" for i in range(20)))
    settings = make_settings(tmp_path / "state", projects_dir=tmp_path / "projects")
    result = local_training.run(settings, mlflow_server.url, local_training.LocalTrainingJob(
        project="reads-data", data_location=str(drop), data_version="sha256:abc"), quiet=True)
    tags = mlflow_server.client.get_model_version("reads-data", result["versions"][0]).tags
    assert tags[names.TAG_LINEAGE_DATA_LOCATION] == str(drop)
    assert tags[names.TAG_LINEAGE_DATA_VERSION] == "sha256:abc"
    assert names.TAG_LINEAGE_DATA_NOT_READ not in tags and result["warnings"] == []


def test_the_control_centre_says_when_a_project_ignored_the_data_it_retrained_on(
        tmp_path, mlflow_server, caplog):
    from mlops_control.control_centre import ControlCentre
    from tests.live import free_block, wait_until

    write_project(tmp_path / "projects", "deaf-data", "None if test_env else 'deaf-data'")
    settings = make_settings(tmp_path / "state", projects_dir=tmp_path / "projects",
                             endpoint_base_port=free_block())
    centre = ControlCentre(settings, mlflow_server.url, stages=frozenset({"staging"}),
                           reconcile_interval_s=3600, serving_workers=1, receiver_port=0)
    centre.start()
    try:
        inbox = settings.inbox_dir / "deaf-data"
        inbox.mkdir(parents=True, exist_ok=True)
        (inbox / "drop.csv").write_text("a,b,target\n1,2,3\n")
        wait_until(lambda: any(i["action"] == "train" for i in centre.status()["recent"]),
                   "the inbox file to be trained on", timeout=180)
    finally:
        centre.stop()
    [trained] = [i for i in centre.status()["recent"] if i["action"] == "train"]
    assert trained["ok"] and "deaf-data did not read the data at " in trained["message"]
    [warned] = [r for r in caplog.records if r.getMessage() == "trained with a warning"]
    assert warned.levelname == "WARNING" and warned.project == "deaf-data"
    assert "read $MLOPS_DATA_LOCATION in get_data()" in warned.warning


@pytest.mark.parametrize("ending, error", [
    ("raise RuntimeError('evaluation report failed')",
     "RuntimeError: evaluation report failed"),
    ("import sys; sys.exit(2)", "train.py exited with status 2"),
])
def test_a_script_failing_after_registering_leaves_no_version_behind(tmp_path, mlflow_server,
                                                                     ending, error):
    """Issue 13.4: the version a script registered before it failed is deleted (a promotion
    gate or an alias must never pick it), and the failure says so."""
    folder = write_project(tmp_path / "projects", "fails-late", "'fails-late'")
    train_py = folder / "train.py"
    train_py.write_text(train_py.read_text() + ending + "\n")
    with pytest.raises(local_training.TrainingFailed) as err:
        train(tmp_path, mlflow_server, "fails-late")
    assert error in err.value.reason
    assert ("the failed run had registered version 1 of 'fails-late' (deleted it and the "
            "model it created)") in err.value.reason
    assert "fails-late" not in mlflow_server.client.registered_model_names()


def test_a_job_stopped_after_registering_leaves_no_version_behind(tmp_path, mlflow_server):
    """SIGTERM (a timeout, SageMaker's StopTrainingJob) while the script still runs after
    registering: the job deletes the version before it ends, and says it was stopped."""
    import signal
    import time

    folder = write_project(tmp_path / "projects", "stopped-late", "'stopped-late'")
    train_py = folder / "train.py"
    train_py.write_text(train_py.read_text() + "import time; time.sleep(120)\n")
    ml_root = MLRoot(tmp_path / "ml")
    ml_root.prepare_training({"project": "stopped-late"})
    env = {**os.environ, names.ENV_ML_ROOT: str(ml_root.root),
           names.ENV_PROJECTS_DIR: str(tmp_path / "projects"),
           "MLFLOW_TRACKING_URI": mlflow_server.url, "TEST_ENV": "False"}
    job = subprocess.Popen([sys.executable, "-m", "mlops_control.container", "train"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while "stopped-late" not in mlflow_server.client.registered_model_names():
            assert job.poll() is None and time.monotonic() < deadline, job.stderr.read()[-2000:]
            time.sleep(0.5)
        job.send_signal(signal.SIGTERM)
        assert job.wait(timeout=60) == 1
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    failure = ml_root.failure_file.read_text()
    assert "the job was stopped (SIGTERM: a timeout, or StopTrainingJob)" in failure, failure
    assert "the failed run had registered version 1 of 'stopped-late'" in failure
    assert "stopped-late" not in mlflow_server.client.registered_model_names()
