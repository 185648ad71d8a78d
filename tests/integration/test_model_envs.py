"""Endpoints serve a model in the model's own environment (13.2): a model needing a package the
control centre lacks gets a virtualenv built from its requirements.txt (once, cached), and a
model whose environment cannot be built or whose packages are missing fails its deployment
with the real cause while the previous version keeps serving."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from mlops_control import model_env, names, procs
from mlops_control.backends.local import LocalBackend
from mlops_control.registry import RegistryClient
from mlops_control.steps.backend import DeploymentFailed, DeployTarget
from tests.conftest import REPO, make_settings
from tests.live import free_block
from tests.models import split_request
from tests.registered_models import fresh_name, register_folder, save_unidecode_model

pytestmark = pytest.mark.integration

NEEDS_UNIDECODE = ["mlflow-skinny==3.17.2", "text-unidecode==1.3"]
UNAVAILABLE = ["mlflow-skinny==3.17.2", "nonexistent-package-xyz==1.0"]
ROWS = {"dataframe_split": {"columns": ["x"], "data": [[1.0], [2.0]]}}


@pytest.fixture(scope="module")
def backend(mlflow_server, tmp_path_factory):
    """One state folder for the module, so the model's virtualenv is built once."""
    settings = make_settings(tmp_path_factory.mktemp("envs"), endpoint_base_port=free_block())
    local = LocalBackend(settings, RegistryClient(mlflow_server.url), workers=1)
    yield local
    for record in local.records():
        local.retire(record.project, record.stage)


@pytest.fixture(scope="module")
def unidecode_version(mlflow_server, tmp_path_factory) -> tuple[str, str]:
    name = fresh_name("unidecode")
    folder = save_unidecode_model(tmp_path_factory.mktemp("m") / "model", NEEDS_UNIDECODE)
    return name, register_folder(mlflow_server.url, name, folder)


def target(project: str, stage: str, version: str, payload=ROWS) -> DeployTarget:
    return DeployTarget(project=project, stage=stage, version=version,
                        endpoint=names.endpoint_name(project, stage), run_id=None,
                        smoke_payload=payload)


def invoke(url: str, payload) -> dict:
    request = urllib.request.Request(f"{url}/invocations", data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def served_version(url: str) -> str:
    with urllib.request.urlopen(f"{url}/version", timeout=10) as response:
        return str(json.loads(response.read())["version"])


def test_a_model_needing_a_package_we_lack_serves_in_its_own_virtualenv(
        backend, unidecode_version, monkeypatch, caplog) -> None:
    pytest.importorskip("mlflow")
    assert model_env.unmet(NEEDS_UNIDECODE) == ["text-unidecode==1.3"]  # not in our venv
    monkeypatch.delenv(model_env.ENV_VAR, raising=False)  # auto
    name, version = unidecode_version
    with caplog.at_level("INFO", logger="mlops_control.local"):
        backend.deploy(target(name, "production", version))
    # len("Aeroskobing") == 11, plus the input: computed by text_unidecode inside the model.
    assert invoke(backend.url(name, "production"), ROWS)["predictions"] == [12, 13]
    record = backend.records(name)[0]
    assert record.python != sys.executable
    assert Path(record.python).is_relative_to(backend.settings.state_dir / "envs")
    assert any("creating environment for " + f"{name}/{version}" in r.getMessage()
               for r in caplog.records)
    assert any("text-unidecode" in r.getMessage() for r in caplog.records)  # pip's lines


def test_the_model_environment_is_cached_by_its_requirements(backend, unidecode_version,
                                                             caplog) -> None:
    name, version = unidecode_version
    with caplog.at_level("INFO", logger="mlops_control.local"):
        backend.deploy(target(name, "staging", version))
    assert not any("creating environment" in r.getMessage() for r in caplog.records)
    assert invoke(backend.url(name, "staging"), ROWS)["predictions"] == [12, 13]


def test_an_environment_pip_cannot_build_fails_with_pips_reason_and_the_previous_version_serves(
        backend, mlflow_server, shelf, tmp_path) -> None:
    name = fresh_name("unbuildable")
    good = register_folder(mlflow_server.url, name, shelf.forest().path)
    backend.deploy(target(name, "production", good, split_request(shelf.forest().X)))
    bad = register_folder(mlflow_server.url, name,
                          save_unidecode_model(tmp_path / "bad", UNAVAILABLE))

    with pytest.raises(DeploymentFailed) as failed:
        backend.deploy(target(name, "production", bad))

    message = str(failed.value)
    assert "could not build the model's environment" in message
    assert "nonexistent-package-xyz==1.0" in message
    assert "No matching distribution" in message or "Could not find a version" in message
    assert served_version(backend.url(name, "production")) == good
    # A failed build leaves no half environment behind to be taken for a ready one.
    assert not list((backend.settings.state_dir / "envs").glob("serving-*/bin")) or all(
        (p.parent / model_env.READY).exists()
        for p in (backend.settings.state_dir / "envs").glob("serving-*/bin"))


def test_with_the_local_manager_a_missing_package_is_named_in_the_failure(
        backend, mlflow_server, shelf, unidecode_version, monkeypatch) -> None:
    name = fresh_name("missing")
    good = register_folder(mlflow_server.url, name, shelf.forest().path)
    backend.deploy(target(name, "production", good, split_request(shelf.forest().X)))
    _, source_version = unidecode_version
    folder = backend.settings.models_dir / unidecode_version[0] / source_version
    needs = register_folder(mlflow_server.url, name, folder)
    monkeypatch.setenv(model_env.ENV_VAR, "local")

    with pytest.raises(DeploymentFailed) as failed:
        backend.deploy(target(name, "production", needs))

    assert "No module named 'text_unidecode'" in str(failed.value)
    assert served_version(backend.url(name, "production")) == good


def test_an_unknown_manager_is_refused_naming_the_choices(monkeypatch) -> None:
    monkeypatch.setenv(model_env.ENV_VAR, "conda")
    with pytest.raises(Exception, match="auto, local, virtualenv"):
        model_env.manager()


def test_a_version_needing_its_own_environment_replaces_one_served_by_ours(
        backend, mlflow_server, shelf, unidecode_version) -> None:
    name = fresh_name("switch")
    ours = register_folder(mlflow_server.url, name, shelf.forest().path)
    backend.deploy(target(name, "production", ours, split_request(shelf.forest().X)))
    assert backend.records(name)[0].python == sys.executable
    folder = backend.settings.models_dir / unidecode_version[0] / unidecode_version[1]
    own = register_folder(mlflow_server.url, name, folder)

    backend.deploy(target(name, "production", own))

    url = backend.url(name, "production")
    assert served_version(url) == own
    assert invoke(url, ROWS)["predictions"] == [12, 13]
    assert backend.records(name)[0].python != sys.executable


def test_make_local_deployment_serves_a_model_in_its_environment(
        backend, mlflow_server, unidecode_version) -> None:
    name, version = unidecode_version
    port = procs.free_port()
    # The module's state folder: its environment for this model is already built.
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server.url,
           names.ENV_STATE_DIR: str(backend.settings.state_dir)}
    proc = subprocess.Popen(["make", "-s", "-C", str(REPO), "local-deployment",
                             f"model={name}/{version}", f"port={port}"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        procs.wait_http(f"http://127.0.0.1:{port}/ping", 120, alive=lambda: proc.poll() is None,
                        what="make local-deployment")
        assert invoke(f"http://127.0.0.1:{port}", ROWS)["predictions"] == [12, 13]
    finally:
        procs.stop_group(proc.pid, timeout=20)
        proc.communicate(timeout=30)


def legacy_wheel(folder: Path) -> Path:
    """A package as a model logged with an older stack depends on: it caps a library the
    control centre pins (rich==15) without the model naming that library itself."""
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "legacy_dep-1.0-py3-none-any.whl"
    info = "legacy_dep-1.0.dist-info"
    files = {
        "legacy_dep/__init__.py": "import rich\nVERSION = rich.__name__\n",
        f"{info}/METADATA": "Metadata-Version: 2.1\nName: legacy-dep\nVersion: 1.0\n"
                            "Requires-Dist: rich<14\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\n"
                         "Tag: py3-none-any\n",
    }
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
        archive.writestr(f"{info}/RECORD", "".join(f"{n},,\n" for n in files)
                         + f"{info}/RECORD,,\n")
    return wheel


def test_a_model_whose_requirements_conflict_with_our_pins_is_served_with_its_own(
        backend, mlflow_server, tmp_path, monkeypatch, caplog) -> None:
    """Issue 13.2: a model logged with another MLflow needs other versions of packages we pin
    (MLflow 2.x caps pyarrow and pandas); its requirements win over our pins then."""
    monkeypatch.delenv(model_env.ENV_VAR, raising=False)
    wheel = legacy_wheel(tmp_path / "wheels")
    requirements = [*NEEDS_UNIDECODE, f"legacy-dep @ {wheel.as_uri()}"]
    name = fresh_name("legacy")
    version = register_folder(mlflow_server.url, name,
                              save_unidecode_model(tmp_path / "model", requirements))
    with caplog.at_level("INFO", logger="mlops_control.local"):
        backend.deploy(target(name, "production", version))
    assert any("conflict with the control centre's pins" in r.getMessage()
               for r in caplog.records)
    assert invoke(backend.url(name, "production"), ROWS)["predictions"] == [12, 13]
    python = backend.records(name)[0].python
    rich = subprocess.run([python, "-c", "import rich, importlib.metadata as m; "
                           "print(m.version('rich'))"], capture_output=True, text=True,
                          check=True).stdout.strip()
    assert int(rich.split(".")[0]) < 14, rich
