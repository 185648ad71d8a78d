"""The environment a project trains in with MLOPS_ENV_MANAGER=virtualenv: built with pip's
lines streamed as they come, failing with pip's own reason, leaving nothing half-built."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_control import env_manager, mlproject
from mlops_control.env_build import EnvironmentFailed
from mlops_control.errors import ControlCentreError

MLPROJECT = """name: envy
python_env: python_env.yaml
entry_points:
  main:
    command: "python train.py"
"""


def project_needing(tmp_path: Path, dependency: str) -> mlproject.MLProject:
    folder = tmp_path / "envy"
    folder.mkdir()
    (folder / "MLproject").write_text(MLPROJECT)
    (folder / "python_env.yaml").write_text(f"python: '3.11'\ndependencies:\n  - {dependency}\n")
    (folder / "train.py").write_text("print('training')\n")
    return mlproject.load(folder)


def test_a_failing_build_streams_pips_lines_names_its_reason_and_leaves_nothing(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-package-folder"
    project = project_needing(tmp_path, str(missing))
    envs = tmp_path / "envs"

    with pytest.raises(EnvironmentFailed) as failed:
        env_manager.python_for(project, "virtualenv", envs)

    err = capfd.readouterr().err.splitlines()
    assert err[0].startswith("[env] building the virtualenv of envy in ")
    assert "first time only" in err[0]
    pip_lines = [line for line in err if line.startswith("[env]   ")]
    assert any(str(missing) in line for line in pip_lines), err  # pip's own words, as they came
    message = str(failed.value)
    assert message.startswith("pip install of python_env.yaml's dependencies failed: ERROR")
    assert str(missing) in message
    # Nothing half-built: the next attempt starts from scratch rather than using a broken env.
    assert [p.name for p in envs.iterdir() if not p.name.endswith(".lock")] == []


def test_a_project_without_python_env_is_told_what_virtualenv_needs(tmp_path: Path) -> None:
    folder = tmp_path / "bare"
    folder.mkdir()
    (folder / "MLproject").write_text("name: bare\nentry_points:\n  main:\n    command: x\n")
    with pytest.raises(ControlCentreError, match="MLproject has no python_env"):
        env_manager.python_for(mlproject.load(folder), "virtualenv", tmp_path / "envs")
