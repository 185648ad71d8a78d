"""The Python a project trains with locally: this one, a virtualenv or a conda env.

As in the original Makefile, the environment manager is a setting. ``local`` (the default)
uses this interpreter; ``virtualenv`` builds one environment per distinct python_env.yaml
(cached under the state folder, so only the first run pays for it); ``conda`` does the same
from the project's conda.yaml. A build streams pip's (or conda's) lines as it goes, fails with
their own error lines, and leaves nothing half-built behind (env_build.py).
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import yaml

from mlops_control.env_build import PIP_INSTALL, READY, building, run_streamed, to_stderr
from mlops_control.errors import ControlCentreError
from mlops_control.mlproject import MLProject

PACKAGE_ROOT = Path(__file__).resolve().parents[2]
"""The control centre's source checkout (pyproject.toml), installed into each environment."""


def python_for(project: MLProject, manager: str, envs_dir: Path) -> list[str]:
    """The command prefix that runs Python inside the project's environment."""
    if manager == "local":
        return [sys.executable]
    if manager == "virtualenv":
        return [str(_virtualenv(project, envs_dir))]
    if manager == "conda":
        return _conda(project, envs_dir)
    raise ControlCentreError(f"unknown environment manager {manager!r}")


def _virtualenv(project: MLProject, envs_dir: Path) -> Path:
    spec_name = project.env.get("python_env")
    if not spec_name:
        raise ControlCentreError(
            f"project {project.name!r}: MLproject has no python_env, which the virtualenv "
            "environment manager needs"
        )
    spec_file = project.path / spec_name
    spec = yaml.safe_load(spec_file.read_text()) or {}
    digest = hashlib.sha256(spec_file.read_bytes()).hexdigest()[:16]
    env_dir = envs_dir / f"venv-{digest}"
    python = env_dir / "bin" / "python"
    if (env_dir / READY).exists():
        return python
    with building(env_dir) as needed:
        if needed:
            to_stderr(f"building the virtualenv of {project.name} in {env_dir} (first time "
                      "only; pip's lines follow)")
            run_streamed([sys.executable, "-m", "venv", str(env_dir)], to_stderr,
                         "python -m venv")
            deps = [*spec.get("build_dependencies", []), *spec.get("dependencies", [])]
            # The control centre's own package runs inside the job, so it goes in too.
            run_streamed([str(python), *PIP_INSTALL, *deps, str(PACKAGE_ROOT), "PyYAML",
                          "psutil"], to_stderr,
                         f"pip install of {spec_file.name}'s dependencies")
            to_stderr(f"virtualenv of {project.name} ready")
    return python


def _conda(project: MLProject, envs_dir: Path) -> list[str]:
    conda = shutil.which("conda") or shutil.which("mamba")
    if conda is None:
        raise ControlCentreError(
            "MLOPS_ENV_MANAGER=conda but no conda or mamba is on PATH; install Miniforge, "
            "or use MLOPS_ENV_MANAGER=virtualenv"
        )
    spec_name = project.env.get("conda_env")
    if not spec_name:
        raise ControlCentreError(
            f"project {project.name!r}: MLproject has no conda_env, which conda needs"
        )
    spec_file = project.path / spec_name
    digest = hashlib.sha256(spec_file.read_bytes()).hexdigest()[:16]
    prefix = envs_dir / f"conda-{digest}"
    with building(prefix) as needed:
        if needed:
            to_stderr(f"building the conda environment of {project.name} in {prefix} (first "
                      "time only)")
            run_streamed([conda, "env", "create", "--yes", "--prefix", str(prefix), "--file",
                          str(spec_file)], to_stderr, "conda env create")
            run_streamed([conda, "run", "--prefix", str(prefix), "python", *PIP_INSTALL,
                          str(PACKAGE_ROOT)], to_stderr, "pip install of the control centre")
    return [conda, "run", "--no-capture-output", "--prefix", str(prefix), "python"]
