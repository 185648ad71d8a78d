"""Faults injected into a running control centre: its serving process killed under load, the
MLflow server down when an event arrives, new data that makes training fail, a model whose
artifacts cannot be downloaded, an inbox file that cannot be read, a state folder that
cannot be written. Each is survived, and each is reported where a person would look."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

from mlops_control import events, inbox, names, procs, webhooks
from mlops_control.control_centre import ControlCentre
from tests.live import Load, wait_until
from tests.reliability import figures
from tests.reliability.conftest import (
    Registered,
    deployments,
    endpoint_url,
    http_post,
    log_sources,
    running_centre,
    signed,
    start_mlflow,
    tag_body,
    version_at,
)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def centre(rel_mlflow, tmp_path_factory) -> Any:
    with running_centre(rel_mlflow.url, tmp_path_factory.mktemp("faults-centre")) as cc:
        yield cc


def serve(centre: ControlCentre, model: Registered, source: str) -> str:
    version = model.new_version(source)
    model.tag(version, "deploy", "production")
    wait_until(lambda: model.status(version) in ("in_service", "failed"), f"v{version} in service")
    assert model.status(version) == "in_service", model.tags(version)
    return version


# --- the serving process killed under load -------------------------------------------------
@pytest.mark.parametrize("victim", ["supervisor", "whole group"])
def test_a_serving_process_killed_under_load_comes_back_with_the_right_version(
        centre, model, victim):
    # Switched once before the kill: it must come back with the version it switched to.
    serve(centre, model, model.sources.zero)
    v1 = serve(centre, model, model.sources.one)
    url = endpoint_url(centre, model.name)
    endpoint = f"{model.name}-production"
    pid = centre.backend._managed(endpoint).pid()
    assert pid is not None
    workers = [p.pid for p in psutil.Process(pid).children()]
    with Load(url, json.dumps(model.sources.rows).encode(), clients=3) as load:
        time.sleep(1.0)
        killed_at = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        if victim == "whole group":
            for worker in workers:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker, signal.SIGKILL)
        back = wait_until(lambda: load.first_answer(1, after=killed_at + 0.5)
                          and centre.backend._managed(endpoint).pid() not in (None, pid),
                          "the endpoint to serve again", timeout=120)
        assert back
        recovered = time.monotonic() - killed_at
        time.sleep(1.0)
    assert version_at(url) == v1
    tags = model.tags(v1)
    assert tags[names.TAG_STATUS] == "in_service" and tags["deploy"] == "production", tags
    served_after = [a for a in load.answers if a.at > killed_at + recovered]
    assert served_after and all(a.status == 200 and a.prediction == 1 for a in served_after)
    key = "faults.serving_killed"
    figures.add(key, "survived")
    figures.record(key, **{f"recovery_seconds_{victim.replace(' ', '_')}": round(recovered, 1),
                           f"failed_during_outage_{victim.replace(' ', '_')}":
                               len(load.failures),
                           f"served_{victim.replace(' ', '_')}": load.ok})


# --- MLflow down when an event arrives ----------------------------------------------------
def test_an_event_that_arrives_while_mlflow_is_down_is_acted_on_once_it_is_back(
        tmp_path, sources, shelf):
    """A separate MLflow server, stopped and started again; the event reaches the receiver
    while it is down (the receiver accepts it), and the deployment happens once it is back."""
    server, url = start_mlflow(tmp_path / "mlflow")
    try:
        # Versions need logged models in this server's own artifact store.
        local_sources = log_sources(url, shelf)
        model = Registered(url, f"down-{uuid.uuid4().hex[:6]}", local_sources)
        with running_centre(url, tmp_path / "state") as centre:
            v1 = model.new_version(local_sources.zero)
            # Silence MLflow's own delivery: the event arrives only as the test sends it.
            webhooks.ensure(model.client, "http://127.0.0.1:9/nowhere", "x")
            model.tag(v1, "deploy", "production")
            server.stop()
            assert not procs.port_in_use(server.port)
            body = tag_body(model.name, v1, "deploy", "production")
            secret = webhooks.local_secret(centre.settings.secrets_dir)
            status, answer = http_post(centre.receiver.url, body, signed(secret, body))
            assert status == 202, answer
            time.sleep(8)  # the reconciler meets a dead MLflow, and keeps the work
            assert version_at(endpoint_url(centre, model.name)) is None
            restarted_at = time.monotonic()
            server.start()
            wait_until(lambda: version_at(endpoint_url(centre, model.name)) == v1
                       or model.status(v1) == "failed",
                       "the deployment once MLflow is back", timeout=120)
            assert model.status(v1) != "failed", model.tags(v1)
            wait_until(model.has_status(v1, "in_service"), "v1 recorded in service")
            took = time.monotonic() - restarted_at
            assert centre.wait_idle(60)
            assert len(deployments(centre, model.name)) == 1, centre.history.items
    finally:
        server.stop()
    figures.record("faults.mlflow_down", survived=1, deployed_seconds_after_mlflow_back=round(
        took, 1))


# --- training that fails, artifacts that cannot be fetched ---------------------------------
def test_new_data_that_breaks_training_registers_nothing_and_says_why(centre, rel_mlflow):
    before = (centre.training_jobs, _versions(rel_mlflow, "test-project"))
    drop = centre.settings.inbox_dir / "test-project"
    drop.mkdir(parents=True, exist_ok=True)
    (drop / "broken.csv").write_text("mean_radius,no_target_here\n1.0,2.0\n3.0,4.0\n")
    record = wait_until(lambda: next((i for i in list(centre.history.items)
                                      if i["action"] == "train"), None),
                        "the training outcome", timeout=240)
    assert record["ok"] is False and record["project"] == "test-project"
    assert "target" in record["message"], record["message"]
    assert centre.training_jobs == before[0] + 1
    assert _versions(rel_mlflow, "test-project") == before[1]
    taken = list((centre.settings.state_dir / "data" / "test-project").glob("*broken.csv"))
    assert len(taken) == 1  # kept, so that the failure can be looked into
    figures.record("faults.training_fails", survived=1, reason=record["message"][:160])


def _versions(server: Any, name: str) -> int:
    try:
        return len(server.client.model_versions(name)) if name in \
            server.client.registered_model_names() else 0
    except Exception:
        return 0


def test_a_version_whose_artifacts_are_gone_fails_with_the_reason_and_the_live_one_serves(
        centre, model, rel_mlflow, shelf):
    import mlflow
    import mlflow.sklearn

    v1 = serve(centre, model, model.sources.zero)
    mlflow.set_tracking_uri(rel_mlflow.url)
    with mlflow.start_run(run_id=model.sources.run_id):
        saved = shelf.constant(1)
        info = mlflow.sklearn.log_model(saved.estimator, name=f"gone-{uuid.uuid4().hex[:6]}",
                                        pip_requirements=["scikit-learn"],
                                        serialization_format="skops",
                                        skops_trusted_types=["sklearn.dummy.DummyClassifier"])
    store = rel_mlflow.settings.mlflow_dir / "artifacts"
    model_id = info.model_id
    removed = [p for p in store.rglob(model_id) if p.is_dir()]
    assert removed, f"no artifact folder for {model_id} under {store}"
    for folder in removed:
        shutil.rmtree(folder)
    v2 = model.new_version(info.model_uri)
    model.tag(v2, "deploy", "production")
    wait_until(model.has_status(v2, "failed"), "the failure recorded")
    message = model.tags(v2)[names.TAG_MESSAGE]
    assert "could not download the model" in message, message
    assert f"version {v1} keeps serving" in message
    assert version_at(endpoint_url(centre, model.name)) == v1
    figures.record("faults.artifacts_gone", survived=1, message=message[:200])


# --- the inbox and the state folder -------------------------------------------------------
def test_an_unreadable_inbox_file_is_reported_once_and_does_not_block_the_others(
        tmp_path, monkeypatch, caplog):
    taken: list[events.DataEvent] = []
    watcher = inbox.InboxWatcher(tmp_path / "inbox", tmp_path / "data", taken.append)
    folder = tmp_path / "inbox" / "test-project"
    folder.mkdir(parents=True)
    (folder / "a-unreadable.csv").write_text("x\n1\n")
    (folder / "b-good.csv").write_text("x\n2\n")
    real = inbox._sha256

    def sha256(file: Path) -> str:
        if file.name == "a-unreadable.csv":
            raise OSError(errno.EIO, "Input/output error", str(file))
        return real(file)

    monkeypatch.setattr(inbox, "_sha256", sha256)
    for _ in range(4):
        watcher.scan()
    assert [Path(e.location).name.endswith("b-good.csv") for e in taken] == [True]
    reports = [r for r in caplog.records if r.getMessage().startswith("inbox file could not")]
    assert len(reports) == 1 and "Input/output error" in reports[0].__dict__["error"]
    assert (folder / "a-unreadable.csv").exists()  # left in place, tried again later
    figures.add("faults.disk", "inbox_unreadable_survived")


def test_symbolic_links_in_the_inbox_are_refused_and_nothing_outside_is_touched(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.csv").write_text("x\n1\n")
    taken: list[events.DataEvent] = []
    watcher = inbox.InboxWatcher(tmp_path / "inbox", tmp_path / "data", taken.append)
    folder = tmp_path / "inbox" / "test-project"
    folder.mkdir(parents=True)
    (folder / "link.csv").symlink_to(outside / "secret.csv")
    (tmp_path / "inbox" / "linked-project").symlink_to(outside, target_is_directory=True)
    for _ in range(3):
        watcher.scan()
    assert taken == []
    assert (folder / ".rejected" / "link.csv").is_symlink()
    assert "symbolic links" in (folder / ".rejected" / "link.csv.reason.txt").read_text()
    assert sorted(p.name for p in outside.iterdir()) == ["secret.csv"]


def test_a_state_folder_that_cannot_be_written_is_a_clear_error_not_a_traceback(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = {**os.environ, names.ENV_STATE_DIR: str(blocker / "state"),
           "MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}
    for argv in (["up"], ["webhook", "register"], ["server", "start"]):
        result = subprocess.run([sys.executable, "-m", "mlops_control", *argv], env=env,
                                capture_output=True, text=True, timeout=120, cwd=REPO)
        assert result.returncode == 2, (argv, result.stderr[-500:])
        assert "Traceback" not in result.stderr
        assert "Not a directory" in result.stderr and str(blocker) in result.stderr
        assert "MLOPS_STATE_DIR" in result.stderr
    figures.add("faults.disk", "state_dir_unwritable_reported")
