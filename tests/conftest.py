"""Shared fixtures: one real MLflow server per test session, and helpers to make settings."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from mlops_control import procs
from mlops_control.local_server import LocalMLflow
from mlops_control.registry import RegistryClient
from mlops_control.settings import Settings

REPO = Path(__file__).resolve().parents[1]
PROJECTS = REPO / "projects"

os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
# Tests never talk to a server the developer happens to have configured.
os.environ.pop("MLFLOW_TRACKING_URI", None)


def make_settings(state_dir: Path, projects_dir: Path = PROJECTS, **changes: object) -> Settings:
    base = Settings(state_dir=state_dir, projects_dir=projects_dir, tracking_uri=None,
                    env_manager="local", mlflow_port=procs.free_port(),
                    receiver_port=procs.free_port())
    return replace(base, **changes)  # type: ignore[arg-type]


class Server:
    def __init__(self, settings: Settings, url: str) -> None:
        self.settings = settings
        self.url = url
        self.client = RegistryClient(url)


def validate_cli(folder: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``mlops validate <folder>`` as a user runs it, with the folder's parent as the projects
    folder; the CLI runner's result (``exit_code``, ``output``)."""
    from typer.testing import CliRunner

    from mlops_control import cli

    monkeypatch.setenv("MLOPS_PROJECTS_DIR", str(folder.parent))
    return CliRunner().invoke(cli.app, ["validate", str(folder)])


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real MLflow server (SQLite, local artifacts) on a free port, for the whole session."""
    settings = make_settings(tmp_path_factory.mktemp("mlflow-state"))
    server = LocalMLflow(settings)
    url = server.start()
    try:
        yield Server(settings, url)
    finally:
        server.stop()


@pytest.fixture(scope="session")
def trained(mlflow_server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """test-project trained and registered once per session (version 1)."""
    from mlops_control import local_training

    settings = make_settings(tmp_path_factory.mktemp("train-state"))
    return local_training.run(settings, mlflow_server.url,
                              local_training.LocalTrainingJob(project="test-project"),
                              quiet=True)
