"""The shared image's requirement union: one install for every project, conflicts refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "training_image"))
import collect_requirements as cr  # noqa: E402


def project(root: Path, name: str, *deps: str, python: str = "3.11") -> None:
    folder = root / name
    folder.mkdir(parents=True)
    lines = "\n".join(f"  - {d}" for d in deps)
    (folder / "python_env.yaml").write_text(
        f'python: "{python}"\nbuild_dependencies:\n  - pip\ndependencies:\n{lines}\n')


def test_the_union_keeps_each_package_once_and_says_who_wants_it(tmp_path):
    project(tmp_path, "a", "pandas==3.1.1", "scikit-learn>=1.5")
    project(tmp_path, "b", "pandas==3.1.1", "xgboost==3.0.0")
    text = cr.render(cr.collect(tmp_path, None, "3.11"))
    assert "pandas==3.1.1  # a, b" in text
    assert "xgboost==3.0.0  # b" in text and "scikit-learn>=1.5  # a" in text


def test_two_projects_pinning_different_versions_is_a_conflict_naming_both(tmp_path):
    project(tmp_path, "a", "pandas==3.1.1")
    project(tmp_path, "b", "pandas==2.2.3")
    with pytest.raises(cr.ConflictError, match=r"pandas .*a: pandas==3.1.1.*b: pandas==2.2.3"):
        cr.collect(tmp_path, None, "3.11")


def test_a_pin_outside_another_projects_range_is_a_conflict(tmp_path):
    project(tmp_path, "a", "numpy==1.26.4")
    project(tmp_path, "b", "numpy>=2")
    with pytest.raises(cr.ConflictError, match="numpy"):
        cr.collect(tmp_path, None, "3.11")


def test_a_project_conflicting_with_the_control_centre_itself_is_refused(tmp_path):
    (tmp_path / "requirements.txt").write_text("mlflow==3.17.2\n")
    projects = tmp_path / "projects"
    project(projects, "a", "mlflow==2.22.0")
    with pytest.raises(cr.ConflictError, match="control centre"):
        cr.collect(projects, tmp_path / "requirements.txt", "3.11")


def test_a_project_wanting_another_python_is_refused(tmp_path):
    project(tmp_path, "a", "pandas", python="3.9")
    with pytest.raises(cr.ConflictError, match=r"Python 3\.9"):
        cr.collect(tmp_path, None, "3.11")


def test_the_real_projects_and_requirements_collect_without_conflict(tmp_path):
    out = tmp_path / "image-requirements.txt"
    result = subprocess.run([sys.executable, str(REPO / "training_image/collect_requirements.py"),
                             "--projects", str(REPO / "projects"), "--base",
                             str(REPO / "requirements.txt"), "--python", "3.11",
                             "--output", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "mlflow==3.17.2" in out.read_text()


def test_a_conflict_fails_the_command_with_a_message(tmp_path):
    project(tmp_path, "a", "pandas==3.1.1")
    project(tmp_path, "b", "pandas==2.2.3")
    code = cr.main(["--projects", str(tmp_path), "--output", str(tmp_path / "out.txt")])
    assert code == 1 and not (tmp_path / "out.txt").exists()


@pytest.mark.parametrize("dockerfile", ["training_image/Dockerfile", "mlflow_image/Dockerfile"])
def test_the_dockerfiles_pass_hadolint(dockerfile):
    hadolint = Path(sys.executable).with_name("hadolint")
    result = subprocess.run([str(hadolint), str(REPO / dockerfile)], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_shared_image_runs_the_shared_entrypoint_as_root_so_it_can_write_opt_ml():
    # SageMaker mounts /opt/ml at run time owned by root and runs the image's USER: a
    # non-root final USER could not write /opt/ml/model or /opt/ml/output/failure.
    text = (REPO / "training_image/Dockerfile").read_text()
    assert 'ENTRYPOINT ["python", "-m", "mlops_control.container"]' in text
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users[-1] in ("root", "0")
    assert "collect_requirements.py" in text
