"""``mlops validate`` reports every problem of a project at once, each with what to do."""

from __future__ import annotations

import shutil
from pathlib import Path

from typer.testing import CliRunner

from mlops_control import cli
from tests.conftest import PROJECTS


def broken_project(root: Path) -> Path:
    folder = root / "many-problems"
    shutil.copytree(PROJECTS / "test-project", folder)
    (folder / "MLproject").write_text(
        "name: many-problems\npython_env: python_env.yaml\nentry_points:\n  main:\n"
        "    parameters:\n      alpha: {type: float, default: 0.5}\n"
        "    command: |\n      python fit.py\n        --alpha {alpha}\n")
    train = (folder / "train.py").read_text()
    (folder / "train.py").write_text(
        train.replace('MODEL_NAME = "test-project"', 'MODEL_NAME = "other-name"')
        .replace("import mlflow\n", "import mlflow\nimport lightgbm\n", 1))
    (folder / "data.py").write_text("def get_data(path):\n    return [], []\n")
    return folder


def test_validate_reports_every_problem_at_once(tmp_path, monkeypatch):
    folder = broken_project(tmp_path)
    monkeypatch.setenv("MLOPS_PROJECTS_DIR", str(tmp_path))
    result = CliRunner().invoke(cli.app, ["validate", str(folder)])
    assert result.exit_code == 1
    out = result.output
    assert "project 'many-problems': 4 problems:" in out, out
    assert ("line 2 ('--alpha {alpha}') continues the command, but line 1 does not end with "
            "a backslash") in out
    assert "train.py: line " in out and "registers the model as 'other-name'" in out
    assert "imports lightgbm, which python_env.yaml does not install; add lightgbm" in out
    assert "data.py: get_data() must take no arguments, but it requires path" in out


def test_a_missing_script_is_reported_with_the_other_problems(tmp_path, monkeypatch):
    folder = broken_project(tmp_path)
    (folder / "MLproject").write_text(
        "name: many-problems\npython_env: python_env.yaml\nentry_points:\n  main:\n"
        "    command: python fit.py\n")
    monkeypatch.setenv("MLOPS_PROJECTS_DIR", str(tmp_path))
    result = CliRunner().invoke(cli.app, ["validate", str(folder)])
    assert "runs fit.py, which is not in the project folder" in result.output
    assert "get_data() must take no arguments" in result.output
