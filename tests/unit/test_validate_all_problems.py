"""``mlops validate`` reports every problem of a project at once, each with what to do."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mlops_control import local_training, mlproject
from mlops_control.errors import ContractError
from tests.conftest import PROJECTS, make_settings, validate_cli


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
    result = validate_cli(folder, monkeypatch)
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
    result = validate_cli(folder, monkeypatch)
    assert "runs fit.py, which is not in the project folder" in result.output
    assert "get_data() must take no arguments" in result.output


def test_a_name_mismatch_is_reported_with_the_other_problems(tmp_path, monkeypatch):
    folder = broken_project(tmp_path)
    mlproject_file = folder / "MLproject"
    mlproject_file.write_text(mlproject_file.read_text().replace("name: many-problems",
                                                                 "name: test-project"))
    result = validate_cli(folder, monkeypatch)
    assert result.exit_code == 1
    out = result.output
    assert "project 'many-problems': 5 problems:" in out, out
    assert ("  - MLproject: declares name 'test-project' but lives in folder 'many-problems'; "
            "make them equal") in out
    assert "line 2 ('--alpha {alpha}') continues the command" in out
    assert "registers the model as 'other-name'; register it under the project's name: " \
           "registered_model_name='many-problems'" in out
    assert "imports lightgbm, which python_env.yaml does not install" in out
    assert "data.py: get_data() must take no arguments" in out


def test_a_missing_environment_file_is_reported_with_the_name_mismatch(tmp_path, monkeypatch):
    folder = broken_project(tmp_path)
    (folder / "python_env.yaml").unlink()
    mlproject_file = folder / "MLproject"
    mlproject_file.write_text(mlproject_file.read_text().replace("name: many-problems",
                                                                 "name: test-project"))
    out = validate_cli(folder, monkeypatch).output
    assert "declares name 'test-project'" in out
    assert "MLproject: python_env names 'python_env.yaml', which is missing" in out, out
    assert "registers the model as 'other-name'" in out
    assert "environment file:" not in out  # the missing file is said once, not per import


def test_a_copied_project_is_told_both_names_to_change_at_once(tmp_path, monkeypatch):
    folder = tmp_path / "copy-project"
    shutil.copytree(PROJECTS / "test-project", folder)
    result = validate_cli(folder, monkeypatch)
    assert result.exit_code == 1
    out = result.output
    assert "project 'copy-project': 2 problems:" in out, out
    assert "  - MLproject: declares name 'test-project' but lives in folder 'copy-project'" in out
    assert "  - train.py: line " in out
    assert ("registers the model as 'test-project'; register it under the project's name: "
            "registered_model_name='copy-project'") in out


def test_a_name_mismatch_alone_keeps_its_one_line_message(tmp_path, monkeypatch):
    folder = tmp_path / "copy-project"
    shutil.copytree(PROJECTS / "test-project", folder)
    train = folder / "train.py"
    train.write_text(train.read_text().replace('MODEL_NAME = "test-project"',
                                               'MODEL_NAME = "copy-project"'))
    result = validate_cli(folder, monkeypatch)
    assert result.exit_code == 1
    assert result.output.strip() == (
        "✗ project 'copy-project': MLproject: declares name 'test-project' but lives in folder "
        "'copy-project'; make them equal")


def test_training_still_refuses_a_project_whose_mlproject_names_another(tmp_path):
    projects = tmp_path / "projects"
    shutil.copytree(PROJECTS / "test-project", projects / "copy-project")
    (projects / "copy-project" / "python_env.yaml").unlink()
    settings = make_settings(tmp_path / "state", projects_dir=projects)
    with pytest.raises(ContractError) as err:
        local_training.run(settings, "http://127.0.0.1:1", local_training.LocalTrainingJob(
            project="copy-project", register=False), quiet=True)
    assert str(err.value) == (
        "project 'copy-project': 2 problems:\n"
        "  - MLproject: declares name 'test-project' but lives in folder 'copy-project'; "
        "make them equal\n"
        "  - MLproject: python_env names 'python_env.yaml', which is missing")
    with pytest.raises(ContractError, match="declares name 'test-project'"):
        mlproject.load(projects / "copy-project")


def test_an_mlproject_that_does_not_parse_fully_still_lets_the_code_be_checked(
        tmp_path, monkeypatch):
    folder = broken_project(tmp_path)
    (folder / "MLproject").write_text(
        "name: test-project\npython_env: python_env.yaml\nentry_points:\n  main:\n"
        "    parameters:\n      alpha: {type: tensor}\n    command: python train.py {alpha}\n")
    out = validate_cli(folder, monkeypatch).output
    assert "project 'many-problems': 5 problems:" in out, out
    assert "MLproject: declares name 'test-project'" in out
    assert "MLproject: entry point 'main': parameter 'alpha' has type 'tensor'" in out
    assert "registers the model as 'other-name'" in out
    assert "imports lightgbm, which python_env.yaml does not install" in out
    assert "data.py: get_data() must take no arguments" in out
