"""The ports a user is told are the ports that serve (13.9), and `make local-deployment-test`
works for numpy-input projects (13.7): the real make rules against real local servers."""

from __future__ import annotations

import json
import os
import re
import subprocess
import textwrap
import urllib.request
from pathlib import Path

import pytest

from mlops_control import names, procs
from mlops_control.backends.local import LocalBackend
from mlops_control.control_centre import ControlCentre
from mlops_control.local_server import LocalMLflow
from mlops_control.ports import PortBook
from mlops_control.registry import RegistryClient
from mlops_control.steps.backend import DeployTarget
from tests.conftest import REPO, make_settings
from tests.live import free_block, wait_until
from tests.models import split_request
from tests.registered_models import fresh_name, register_folder
from tests.serving_process import serving

pytestmark = pytest.mark.integration


def make(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-s", "-C", str(REPO), *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=timeout)


def ping(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def deploy_forest(backend: LocalBackend, mlflow_server, shelf, name: str) -> None:
    """Register the forest as ``name`` and deploy it to production."""
    version = register_folder(mlflow_server.url, name, shelf.forest().path)
    backend.deploy(DeployTarget(project=name, stage="production", version=version,
                                endpoint=names.endpoint_name(name, "production"),
                                run_id=None, smoke_payload=split_request(shelf.forest().X)))


def test_the_banner_shows_the_port_the_first_project_then_serves_on(
        mlflow_server, shelf, tmp_path_factory) -> None:
    base = free_block()
    # A short state path: the endpoints' control sockets live under it.
    settings = make_settings(tmp_path_factory.mktemp("ports"), endpoint_base_port=base)
    backend = LocalBackend(settings, RegistryClient(mlflow_server.url), workers=1)
    stages = ["production", "staging"]
    banner = backend.ports.describe(stages)  # what `make up` prints before any deployment
    shown = int(re.search(r"production on :(\d+)", banner).group(1))  # type: ignore[union-attr]
    assert shown == base
    assert PortBook(settings.run_dir / "ports.json").projects() == []  # no placeholder booked

    name = fresh_name("banner")
    try:
        deploy_forest(backend, mlflow_server, shelf, name)
        assert ping(shown)
        # Once it is known, the banner names the project and the same port.
        assert f"{name}: production on :{shown}, staging on :{shown + 1}" in \
            backend.ports.describe(stages)
    finally:
        backend.retire(name, "production")


def test_a_placeholder_left_in_ports_json_does_not_move_the_first_project_off_the_banner(
        mlflow_server, shelf, tmp_path_factory) -> None:
    base = free_block()
    settings = make_settings(tmp_path_factory.mktemp("ports"), endpoint_base_port=base)
    # What the banner of an earlier `make up` booked: a placeholder ahead of every project.
    book_file = settings.run_dir / "ports.json"
    book_file.parent.mkdir(parents=True, exist_ok=True)
    book_file.write_text(json.dumps({"projects": ["<project>"],
                                     "stages": ["production", "staging"]}))
    backend = LocalBackend(settings, RegistryClient(mlflow_server.url), workers=1)
    banner = backend.ports.describe(["production", "staging"])
    assert banner == f"first project deployed: production on :{base}, staging on :{base + 1}"

    name = fresh_name("placeholder")
    try:
        deploy_forest(backend, mlflow_server, shelf, name)
        assert ping(base)  # where the banner said, not 10 ports above
        assert backend.ports.describe(["production"]) == f"{name}: production on :{base}"
        assert json.loads(book_file.read_text())["projects"] == [name]
    finally:
        backend.retire(name, "production")


def version_on(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/version", timeout=2) as response:
            return str(json.loads(response.read())["version"])
    except (OSError, ValueError, KeyError):
        return None


def test_each_custom_stage_serves_on_its_own_port_the_banner_showed(
        shelf, tmp_path_factory) -> None:
    base = free_block()
    settings = make_settings(tmp_path_factory.mktemp("ports"), endpoint_base_port=base)
    # An MLflow server of its own: the session's holds other projects the centre would deploy.
    server = LocalMLflow(settings)
    url = server.start()
    stages = frozenset({"staging", "production", "shadow", "canary"})  # MLOPS_STAGES
    centre = ControlCentre(settings, url, stages=stages, reconcile_interval_s=3600,
                           serving_workers=1, receiver_port=0)
    try:
        centre.start()
        ordered = sorted(stages, key=lambda x: (x != "production", x))  # as `mlops up` lists
        banner = centre.backend.ports.describe(ordered)  # printed before anything serves
        shown = {s: int(p) for s, p in re.findall(r"(\w+) on :(\d+)", banner)}
        assert banner.startswith("first project deployed: ")
        assert sorted(shown) == sorted(stages)
        assert len(set(shown.values())) == len(stages), banner  # no two stages share a port
        assert shown["production"] == base and shown["staging"] == base + 1

        name = fresh_name("stages")
        registry = RegistryClient(url)
        # Deployed in the reverse of the order they were booked in.
        for stage in ("shadow", "canary"):
            version = register_folder(url, name, shelf.forest().path)
            registry.set_tag(name, version, names.TAG_DEPLOY, stage)
            wait_until(lambda v=version: registry.get_model_version(name, v)
                       .tags.get(names.TAG_STATUS) == "in_service", f"{stage} in service")
            assert version_on(shown[stage]) == version, f"{stage} is not on :{shown[stage]}"
        assert centre.backend.ports.describe(ordered) == f"{name}: " + ", ".join(
            f"{s} on :{shown[s]}" for s in ordered)
    finally:
        centre.stop()
        server.stop()


def test_make_local_deployment_serves_on_mlops_endpoint_port_and_port_wins_over_it(
        mlflow_server, shelf, tmp_path: Path) -> None:
    name = fresh_name("makeport")
    register_folder(mlflow_server.url, name, shelf.forest().path)
    env_port, explicit = procs.free_port(), procs.free_port()
    env = {"MLFLOW_TRACKING_URI": mlflow_server.url, names.ENV_STATE_DIR: str(tmp_path),
           "MLOPS_ENDPOINT_PORT": str(env_port)}
    for extra, port in (((), env_port), ((f"port={explicit}",), explicit)):
        proc = subprocess.Popen(["make", "-s", "-C", str(REPO), "local-deployment",
                                 f"model={name}", *extra],
                                env={**os.environ, **env}, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            procs.wait_http(f"http://127.0.0.1:{port}/ping", 120,
                            alive=lambda p=proc: p.poll() is None, what="make local-deployment")
        finally:
            procs.stop_group(proc.pid, timeout=20)
            output = proc.communicate(timeout=30)[0]
        assert f"on http://127.0.0.1:{port} " in output  # what it says is where it served


NUMPY_PROJECT_DATA = """
    import numpy as np


    def get_data():
        rng = np.random.default_rng(0)
        X = rng.normal(size=(100, 4))
        return X[:10], (X[:10, 0] > 0).astype("int64")
"""


def test_make_local_deployment_test_sends_instances_for_a_numpy_project(shelf,
                                                                     tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    project = projects / "numpy-project"
    project.mkdir(parents=True)
    (project / "MLproject").write_text(
        "name: numpy-project\nentry_points:\n  main:\n    command: python train.py\n")
    (project / "data.py").write_text(textwrap.dedent(NUMPY_PROJECT_DATA))
    (project / "train.py").write_text("")  # never run: only the test slice is read
    tensor = shelf.tensor()  # a forest with a (-1, 4) float64 tensor signature
    with serving(tensor.path, tmp_path, workers=1) as server:
        done = make("local-deployment-test", "project=numpy-project", f"port={server.port}",
                    env={names.ENV_PROJECTS_DIR: str(projects)})
    assert done.returncode == 0, done.stdout + done.stderr
    answer = json.loads(done.stdout)
    expected = tensor.predict(tensor.X[:5]).tolist()
    assert answer["predictions"] == expected
