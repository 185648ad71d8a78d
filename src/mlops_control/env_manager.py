"""The Python a project trains with locally: this one, a virtualenv or a conda env.

As in the original Makefile, the environment manager is a setting. ``local`` (the default)
uses this interpreter; ``virtualenv`` builds one environment per distinct python_env.yaml
(cached under the state folder, so only the first run pays for it); ``conda`` does the same
from the project's conda.yaml.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from mlops_control.errors import ControlCentreError
from mlops_control.mlproject import MLProject


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
    if (env_dir / ".ready").exists():
        return python
    print(f"[env] building virtualenv for {project.name} in {env_dir} (first time only)",
          file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    deps = [*spec.get("build_dependencies", []), *spec.get("dependencies", [])]
    # The control centre's own package runs inside the job, so it goes in too.
    deps.append(str(Path(__file__).resolve().parents[2]))
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *deps, "PyYAML", "psutil"],
                   check=True)
    (env_dir / ".ready").touch()
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
    if not (prefix / ".ready").exists():
        subprocess.run([conda, "env", "create", "--yes", "--prefix", str(prefix), "--file",
                        str(spec_file)], check=True)
        subprocess.run([conda, "run", "--prefix", str(prefix), "pip", "install", "--quiet",
                        str(Path(__file__).resolve().parents[2])], check=True)
        (prefix / ".ready").touch()
    return [conda, "run", "--no-capture-output", "--prefix", str(prefix), "python"]
