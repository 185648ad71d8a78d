"""The Python a local endpoint serves a model with: this one, or a virtualenv of the model's own.

Like ``mlflow models serve --env-manager virtualenv``: a model whose ``requirements.txt`` this
interpreter does not satisfy (a lightgbm model, a custom pyfunc importing a package of its
own) is served by a virtualenv holding the model's pinned requirements and what our serving
process imports. ``MLOPS_SERVING_ENV_MANAGER`` chooses:

- ``auto`` (default): this interpreter when it satisfies every requirement (checked with
  importlib.metadata, no subprocess: the demo stays fast), else the model's virtualenv;
- ``local``: always this interpreter (a missing package then fails the deployment, naming it);
- ``virtualenv``: always the model's virtualenv.

Environments are built once per distinct requirements.txt + python_env.yaml (and Python
version), under ``<state>/envs/serving-<hash>``; a file lock makes concurrent builds of one
environment (threads or processes) wait for each other. The control centre's own package goes
in as a link to its source folder, so none of its pinned dependencies are re-resolved; only
the few the serving process imports are installed, at the versions in our requirements.txt
unless the model pins them itself.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import mlops_control
from mlops_control.env_build import (
    PIP_INSTALL,
    READY,
    EnvironmentFailed,
    Progress,
    building,
    run_streamed,
    to_stderr,
)
from mlops_control.errors import ControlCentreError

ENV_VAR = "MLOPS_SERVING_ENV_MANAGER"
MANAGERS = ("auto", "local", "virtualenv")
REQUIREMENTS = "requirements.txt"
PYTHON_ENV = "python_env.yaml"

# What ``python -m mlops_control.container serve`` imports beyond the standard library and
# the model's own stack: pinned from our requirements.txt unless the model names them.
SERVING_NEEDS = ("numpy", "pandas", "pyarrow", "PyYAML", "psutil", "orjson", "httptools")
PACKAGE_DIR = Path(mlops_control.__file__).resolve().parent
CONFLICT = re.compile(r"ResolutionImpossible|conflicting dependencies")
"""pip's words for requirements that cannot all hold together."""
OUR_REQUIREMENTS = PACKAGE_DIR.parents[1] / "requirements.txt"

def manager() -> str:
    value = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if value not in MANAGERS:
        raise ControlCentreError(f"{ENV_VAR}={value!r} is not one of {', '.join(MANAGERS)}")
    return value


def python_for(model_dir: Path, envs_dir: Path, label: str,
               progress: Progress | None = None) -> str:
    """The interpreter to serve the model in ``model_dir`` with (building its environment the
    first time it is needed). ``label`` names the model in progress lines."""
    mode = manager()
    if mode == "local":
        return sys.executable
    requirements = read_requirements(model_dir)
    if mode == "auto" and not unmet(requirements):
        return sys.executable
    return str(build(model_dir, envs_dir, label, progress or to_stderr))


def read_requirements(model_dir: Path) -> list[str]:
    file = Path(model_dir) / REQUIREMENTS
    if not file.is_file():
        return []
    lines = (line.split("#", 1)[0].strip() for line in file.read_text().splitlines())
    return [line for line in lines if line]


def unmet(requirements: list[str]) -> list[str]:
    """The requirements this interpreter does not satisfy (an option line such as ``-e`` or
    ``--index-url`` cannot be checked here, so it counts as unmet)."""
    from packaging.requirements import InvalidRequirement, Requirement

    missing = []
    for line in requirements:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            missing.append(line)
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            installed = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            missing.append(line)
            continue
        if req.specifier and not req.specifier.contains(installed, prereleases=True):
            missing.append(line)
    return missing


def env_dir_for(model_dir: Path, envs_dir: Path) -> Path:
    digest = hashlib.sha256(f"{sys.version_info.major}.{sys.version_info.minor}".encode())
    for name in (REQUIREMENTS, PYTHON_ENV):
        file = Path(model_dir) / name
        digest.update(name.encode() + b"\0" + (file.read_bytes() if file.is_file() else b""))
    return envs_dir / f"serving-{digest.hexdigest()[:16]}"


def build(model_dir: Path, envs_dir: Path, label: str, progress: Progress) -> Path:
    """The python of the model's virtualenv, built (once) if it is not there yet."""
    env_dir = env_dir_for(model_dir, envs_dir)
    python = env_dir / "bin" / "python"
    if (env_dir / READY).exists():
        return python
    with building(env_dir) as needed:
        if needed:
            progress(f"creating environment for {label} (first time, takes a minute) "
                     f"in {env_dir}")
            _create(model_dir, env_dir, python, progress)
            progress(f"environment for {label} ready")
    return python


def _create(model_dir: Path, env_dir: Path, python: Path, progress: Progress) -> None:
    run_streamed([sys.executable, "-m", "venv", str(env_dir)], progress, "python -m venv")
    requirements = read_requirements(model_dir)
    _check_python(model_dir, progress)
    named = {_name(line) for line in requirements}
    ours = [line for line in _our_pins() if _name(line) not in named]
    needs = [line for line in ours if _name(line) in {_norm(n) for n in SERVING_NEEDS}]
    constraints = env_dir / "constraints.txt"
    constraints.write_text("".join(f"{line}\n" for line in ours))
    model_requirements = ["-r", str(Path(model_dir) / REQUIREMENTS)] if requirements else []
    try:
        run_streamed([str(python), *PIP_INSTALL, "-c", str(constraints), *needs,
                      *model_requirements], progress, "pip install")
    except EnvironmentFailed as exc:
        if not requirements or not CONFLICT.search(str(exc)):
            raise
        # A model logged with another MLflow (2.x caps pyarrow, pandas, ...) needs other
        # versions of packages we pin than ours: its own requirements decide then, and the
        # serving process takes whatever versions pip resolves for them.
        progress("the model's requirements conflict with the control centre's pins; "
                 "installing them without our pins")
        run_streamed([str(python), *PIP_INSTALL, *(_name(line) for line in needs),
                      *model_requirements], progress, "pip install (without our pins)")
    # Our package as a link to its source: importable, and none of its pins re-resolved.
    site = Path(subprocess.check_output(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        text=True).strip())
    (site / PACKAGE_DIR.name).symlink_to(PACKAGE_DIR, target_is_directory=True)


def _check_python(model_dir: Path, progress: Progress) -> None:
    file = Path(model_dir) / PYTHON_ENV
    if not file.is_file():
        return
    match = re.search(r"^python:\s*['\"]?([0-9.]+)", file.read_text(), re.MULTILINE)
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if match and not (match.group(1) + ".").startswith(here + "."):
        progress(f"the model was logged with Python {match.group(1)}; serving it with "
                 f"Python {here} (the one the control centre runs on)")


def _our_pins() -> list[str]:
    if not OUR_REQUIREMENTS.is_file():  # an installed wheel: no pins to follow
        return []
    return read_requirements(OUR_REQUIREMENTS.parent)


def _name(line: str) -> str:
    return _norm(re.split(r"[\s<>=!~;\[@]", line, maxsplit=1)[0])


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()
