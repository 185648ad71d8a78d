"""Which interpreter serves a model: the fast path (this one satisfies the model's
requirements.txt) and the cache key of a model's own environment."""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

from mlops_control import model_env

NUMPY = metadata.version("numpy")


def test_requirements_this_interpreter_satisfies_are_met() -> None:
    assert model_env.unmet([f"numpy=={NUMPY}", "pandas>=1", "PyYAML"]) == []


def test_a_missing_package_a_wrong_pin_and_an_option_line_are_unmet() -> None:
    wanted = ["nonexistent-package-xyz==1.0", "numpy==0.0.1", "-e ./local", f"numpy=={NUMPY}"]
    assert model_env.unmet(wanted) == wanted[:3]


def test_a_requirement_whose_marker_does_not_apply_is_ignored() -> None:
    assert model_env.unmet(['nonexistent-package-xyz==1.0; python_version < "3.0"']) == []


def test_satisfied_requirements_serve_with_this_interpreter(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(model_env.ENV_VAR, raising=False)
    (tmp_path / "requirements.txt").write_text(f"# pinned\nnumpy=={NUMPY}\n\n")
    assert model_env.python_for(tmp_path, tmp_path / "envs", "m/1") == sys.executable
    assert not (tmp_path / "envs").exists()  # nothing built


def test_the_environment_is_keyed_by_the_requirements(tmp_path: Path) -> None:
    (tmp_path / "requirements.txt").write_text("a==1\n")
    first = model_env.env_dir_for(tmp_path, tmp_path / "envs")
    assert model_env.env_dir_for(tmp_path, tmp_path / "envs") == first
    (tmp_path / "requirements.txt").write_text("a==2\n")
    assert model_env.env_dir_for(tmp_path, tmp_path / "envs") != first
