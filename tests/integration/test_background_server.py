"""A command that needs MLflow and finds none starts the embedded server in the background:
it says so, says how to stop it, and the server is still there after the command ends until
`mlops server stop` (``make mlflow-server-rm``) stops it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_control import procs
from mlops_control.local_server import LocalMLflow
from tests.conftest import make_settings

pytestmark = pytest.mark.integration
MLOPS = [sys.executable, "-m", "mlops_control.cli"]


def test_an_implicitly_started_server_is_announced_outlives_the_command_and_stops(
        tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "state")
    env = {**os.environ, "MLOPS_STATE_DIR": str(settings.state_dir),
           "MLOPS_MLFLOW_PORT": str(settings.mlflow_port),
           "MLOPS_RECEIVER_PORT": str(procs.free_port())}
    env.pop("MLFLOW_TRACKING_URI", None)
    server = LocalMLflow(settings)
    try:
        first = subprocess.run([*MLOPS, "webhook", "register"], env=env, capture_output=True, text=True,
                               timeout=180)
        assert first.returncode == 0, first.stderr
        assert (f"starting the local MLflow server on {server.url} in the background; it "
                "keeps running after this command (stop it with `make mlflow-server-rm`)"
                ) in first.stderr
        assert server.running()  # the command has ended; the server has not

        # The next command uses it, and says nothing about starting one.
        second = subprocess.run([*MLOPS, "webhook", "register"], env=env, capture_output=True, text=True,
                                timeout=120)
        assert second.returncode == 0 and "starting the local MLflow" not in second.stderr
        assert "updated" in second.stdout

        stopped = subprocess.run([*MLOPS, "server", "stop"], env=env, capture_output=True,
                                 text=True, timeout=60)
        assert stopped.stdout.strip() == "MLflow server stopped"
        assert not server.running()
        status = subprocess.run([*MLOPS, "server", "status"], env=env, capture_output=True,
                                text=True, timeout=60)
        assert (status.returncode, status.stdout.strip()) == (1, "not running")
    finally:
        server.stop()  # only the server this test started, found by its own state folder


def test_the_control_centre_says_the_server_it_starts_stops_with_it(tmp_path: Path) -> None:
    """`make up` starts MLflow for itself and stops it on Ctrl-C/SIGTERM: it must not claim
    the server keeps running."""
    import signal
    import time

    settings = make_settings(tmp_path / "state")
    env = {**os.environ, "MLOPS_STATE_DIR": str(settings.state_dir),
           "MLOPS_MLFLOW_PORT": str(settings.mlflow_port),
           "MLOPS_RECEIVER_PORT": str(procs.free_port()),
           "MLOPS_PROJECTS_DIR": str(tmp_path / "projects")}
    (tmp_path / "projects").mkdir()
    env.pop("MLFLOW_TRACKING_URI", None)
    server = LocalMLflow(settings)
    log = tmp_path / "up.log"
    with open(log, "wb") as out:
        up = subprocess.Popen([*MLOPS, "up"], env=env, stdout=out, stderr=subprocess.STDOUT,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 180
        while "control centre up" not in log.read_text() and time.monotonic() < deadline:
            assert up.poll() is None, log.read_text()[-2000:]
            time.sleep(0.5)
        text = log.read_text()
        assert (f"starting the local MLflow server on {server.url}; it stops with this "
                "command") in text, text[-2000:]
        assert "keeps running after this command" not in text
        assert server.running()
        up.send_signal(signal.SIGTERM)
        assert up.wait(timeout=120) == 0, log.read_text()[-2000:]
        assert not server.running()
    finally:
        if up.poll() is None:
            procs.stop_group(up.pid, timeout=20)
        server.stop()


def test_a_control_centre_that_cannot_start_stops_the_server_it_started(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "state")
    stages = ",".join(["production", "staging", *(f"s{i}" for i in range(9))])
    env = {**os.environ, "MLOPS_STATE_DIR": str(settings.state_dir),
           "MLOPS_MLFLOW_PORT": str(settings.mlflow_port),
           "MLOPS_RECEIVER_PORT": str(procs.free_port()),
           "MLOPS_PROJECTS_DIR": str(tmp_path / "projects"), "MLOPS_STAGES": stages}
    (tmp_path / "projects").mkdir()
    env.pop("MLFLOW_TRACKING_URI", None)
    server = LocalMLflow(settings)
    try:
        up = subprocess.run([*MLOPS, "up"], env=env, capture_output=True, text=True,
                            timeout=180)
        assert up.returncode == 2, up.stderr[-2000:]
        assert "MLOPS_STAGES names 11 stages" in up.stderr and "at most 10" in up.stderr
        assert "it stops with this command" in up.stderr
        assert not server.running()  # as announced
    finally:
        server.stop()
