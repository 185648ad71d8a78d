"""`mlops status` for real: the CLI against a real MLflow server, read as a user reads it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

from mlops_control import names
from tests.conftest import REPO
from tests.registered_models import fresh_name, register_folder

pytestmark = pytest.mark.integration


def column(table: str, title: str, version: str) -> str:
    """The cell of ``version``'s row under ``title``, by the header's alignment."""
    header, *rows = table.splitlines()
    titles = header.split()
    start = header.index(title)
    following = titles.index(title) + 1
    end = header.index(titles[following]) if following < len(titles) else None
    row = next(r for r in rows if r.split()[0] == version)
    return row[start:end].strip()


def test_mlops_status_shows_each_versions_aliases(mlflow_server, shelf, tmp_path: Path) -> None:
    name = fresh_name("status")
    v1, v2, v3 = (register_folder(mlflow_server.url, name, shelf.forest().path)
                  for _ in range(3))
    client = mlflow.MlflowClient(mlflow_server.url)
    client.set_registered_model_alias(name, "staging", v1)
    client.set_registered_model_alias(name, "champion", v1)
    client.set_registered_model_alias(name, "challenger", v2)
    client.set_model_version_tag(name, v3, names.TAG_DEPLOY, "production")
    env = {**os.environ, names.ENV_TRACKING_URI: mlflow_server.url,
           names.ENV_STATE_DIR: str(tmp_path / "state")}
    run = subprocess.run([sys.executable, "-m", "mlops_control", "status", name], env=env,
                         capture_output=True, text=True, timeout=120, cwd=REPO)
    assert run.returncode == 0, run.stderr
    table = run.stdout
    assert table.splitlines()[0].split()[:3] == ["version", "aliases", "deploy"], table
    assert column(table, "aliases", v1) == "@champion,@staging"
    assert column(table, "aliases", v2) == "@challenger"
    assert column(table, "aliases", v3) == ""
    assert column(table, "deploy", v3) == "production"
    assert column(table, "deploy", v1) == ""
