"""``mlops validate`` reads the whole project's code, not only its top-level files: a script
that imports a package of the project which registers the model is a registering project, and
that package's imports and registered name are checked like the script's."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import PROJECTS, validate_cli

# The entry script hands the fitted model to a package of the project, which registers it.
TRAIN = """import os

import mlflow
from sklearn.ensemble import RandomForestClassifier

from data import get_data
from {module} import register

X, y = get_data()
with mlflow.start_run():
    register(RandomForestClassifier(n_estimators=5).fit(X, y),
             os.environ.get("TEST_ENV", "").lower() == "true")
"""

REGISTERS = {
    "log_model": ("src/train/register.py", """import mlflow.sklearn

MODEL_NAME = "{name}"


def register(model, test_env):
    mlflow.sklearn.log_model(model, name="model",
                             registered_model_name=None if test_env else MODEL_NAME)
"""),
    "register_model": ("pkg/model.py", """import mlflow
import mlflow.sklearn


def register(model, test_env):
    info = mlflow.sklearn.log_model(model, name="model")
    if not test_env:
        mlflow.register_model(info.model_uri, "{name}")
"""),
    "create_model_version": ("pkg/model.py", """import mlflow
import mlflow.sklearn
from mlflow import MlflowClient


def register(model, test_env):
    info = mlflow.sklearn.log_model(model, name="model")
    if not test_env:
        client = MlflowClient()
        client.create_model_version(name="{name}", source=info.model_uri,
                                    run_id=mlflow.active_run().info.run_id)
"""),
}


def project(root: Path, how: str, registered: str | None = None,
            name: str = "nested-project") -> tuple[Path, str]:
    """A copy of test-project whose train.py leaves registering to a module in a subfolder;
    (the folder, that module's path in it)."""
    folder = root / name
    shutil.copytree(PROJECTS / "test-project", folder)
    (folder / "MLproject").write_text(
        (folder / "MLproject").read_text().replace("test-project", name))
    path, code = REGISTERS[how]
    module = path.removesuffix(".py").replace("/", ".")
    (folder / "train.py").write_text(TRAIN.format(module=module))
    (folder / path).parent.mkdir(parents=True)
    for package in {(folder / path).parent, (folder / path).parents[1]} - {folder}:
        (package / "__init__.py").touch()
    (folder / path).write_text(code.format(name=registered or name))
    return folder, path


def validate(folder: Path, monkeypatch) -> tuple[int, str]:
    result = validate_cli(folder, monkeypatch)
    return result.exit_code, result.output


@pytest.mark.parametrize("how", sorted(REGISTERS))
def test_a_project_registering_in_a_subpackage_passes_validate(tmp_path, monkeypatch, how):
    folder, _ = project(tmp_path, how)
    code, out = validate(folder, monkeypatch)
    assert "never registers" not in out, out
    assert code == 0, out
    assert "✓ nested-project: contract honoured" in out


@pytest.mark.parametrize("how", sorted(REGISTERS))
def test_a_subpackage_registering_under_another_name_is_reported_with_its_path(
        tmp_path, monkeypatch, how):
    folder, path = project(tmp_path, how, registered="someone-else")
    code, out = validate(folder, monkeypatch)
    assert code == 1
    assert f"{path}: line " in out and "registers the model as 'someone-else'" in out, out
    assert "never registers" not in out


def test_a_project_that_registers_nowhere_still_never_registers(tmp_path, monkeypatch):
    folder, path = project(tmp_path, "log_model")
    (folder / path).write_text("def register(model, test_env):\n    pass\n")
    code, out = validate(folder, monkeypatch)
    assert code == 1
    assert ("train.py: never registers a model; pass registered_model_name='nested-project'"
            in out), out


def test_a_subpackage_import_the_environment_lacks_is_reported_and_its_own_modules_are_not(
        tmp_path, monkeypatch):
    folder, path = project(tmp_path, "log_model")
    # helpers.py beside register.py, imported as the script's folder or the package would.
    (folder / "src/train/helpers.py").write_text("LEAVES = 5\n")
    (folder / path).write_text("import lightgbm\nimport helpers\nfrom src.train import helpers"
                               " as h\n" + (folder / path).read_text())
    code, out = validate(folder, monkeypatch)
    assert code == 1
    assert ("src/train/register.py: line 1 imports lightgbm, which python_env.yaml does not "
            "install; add lightgbm") in out, out
    assert "imports helpers" not in out and "imports src" not in out
    assert "problems:" not in out and out.count("imports ") == 1  # that one problem alone


def test_environments_caches_and_mlflow_stores_in_the_project_are_not_its_code(
        tmp_path, monkeypatch):
    folder, _ = project(tmp_path, "log_model")
    stray = ('import lightgbm\nimport mlflow\nmlflow.register_model("runs:/x/model", '
             '"someone-else")\n')
    for place in (".venv/lib/python3.11/site-packages/tool.py", "venv/bin/tool.py",
                  "myenv/lib/tool.py", "mlruns/0/tool.py", "node_modules/x/tool.py",
                  ".git/hooks/tool.py", "__pycache__/tool.py", "build/lib/tool.py",
                  "tests/test_tool.py"):
        (folder / place).parent.mkdir(parents=True, exist_ok=True)
        (folder / place).write_text(stray)
    (folder / "myenv/pyvenv.cfg").write_text("home = /usr/bin\n")  # a virtualenv by any name
    code, out = validate(folder, monkeypatch)
    assert code == 0, out
    assert "someone-else" not in out and "lightgbm" not in out


def test_a_subpackage_that_does_not_parse_is_reported_once(tmp_path, monkeypatch):
    folder, path = project(tmp_path, "log_model")
    (folder / path).write_text("def register(model, test_env:\n    pass\n")
    code, out = validate(folder, monkeypatch)
    assert code == 1
    assert out.count("src/train/register.py: has a syntax error at line 1") == 1, out
    assert "never registers" not in out  # the file that does not parse may be the one


def test_code_training_never_runs_does_not_fail_validate(tmp_path, monkeypatch):
    """A helper script beside the project (Python 2, a library the environment lacks) is not
    what training runs: only the entry point's script, data.py and what they import count."""
    folder, _ = project(tmp_path, "log_model")
    (folder / "scripts").mkdir()
    (folder / "scripts/plot_results.py").write_text(
        "import matplotlib.pyplot as plt\nprint 'plotting'\n")
    (folder / "notebook_export.py").write_text("import seaborn\n")
    code, out = validate(folder, monkeypatch)
    assert code == 0, out
    assert "matplotlib" not in out and "seaborn" not in out and "syntax error" not in out
    # Imported by the script, the same file is checked.
    train = folder / "train.py"
    train.write_text("import notebook_export\n" + train.read_text())
    code, out = validate(folder, monkeypatch)
    assert code == 1 and "notebook_export.py: line 1 imports seaborn" in out, out


@pytest.mark.parametrize("text, reason", [
    ("python: '3.11'\ndependencies: [mlflow==3.17.2\n", "is not valid YAML"),
    ("- mlflow==3.17.2\n", "must be a mapping with a 'dependencies' list"),
])
def test_an_environment_file_that_is_no_environment_is_a_problem_not_a_traceback(
        tmp_path, monkeypatch, text, reason):
    folder, _ = project(tmp_path, "log_model")
    (folder / "python_env.yaml").write_text(text)
    code, out = validate(folder, monkeypatch)
    assert code == 1 and "Traceback" not in out, out
    assert f"python_env.yaml: {reason}" in out, out
