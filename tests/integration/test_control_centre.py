"""The control centre for real: tags set in MLflow drive deployments, rollbacks and
retirements of real local endpoints, and the registry tells what happened."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable

import pytest

from mlops_control import names, procs
from mlops_control.control_centre import ControlCentre
from tests.conftest import make_settings
from tests.live import Load, free_block, wait_until

pytestmark = pytest.mark.integration
STAGES = frozenset({"staging", "production"})


@pytest.fixture(scope="module")
def centre(mlflow_server, tmp_path_factory):
    settings = make_settings(tmp_path_factory.mktemp("centre"), endpoint_base_port=free_block())
    cc = ControlCentre(settings, mlflow_server.url, stages=STAGES, reconcile_interval_s=3600,
                       serving_workers=1, receiver_port=0)
    cc.start()
    yield cc
    cc.stop()


@pytest.fixture
def model(mlflow_server, trained):
    """A fresh registered model per test, whose versions are copies of test-project v1's."""
    name = f"cc-{uuid.uuid4().hex[:8]}"
    source = mlflow_server.client.get_model_version("test-project", trained["versions"][0])
    return Registered(mlflow_server, name, source)


class Registered:
    def __init__(self, server, name, source) -> None:
        self.server, self.name, self.source = server, name, source
        self.client = server.client

    def new_version(self, source: str | None = None, run_id: str | None = None) -> str:
        import mlflow

        client = mlflow.MlflowClient(self.server.url)
        if self.name not in self.client.registered_model_names():
            client.create_registered_model(self.name)
        source = source or self.source.source
        model_id = source.removeprefix("models:/") if source.startswith("models:/m-") else None
        mv = client.create_model_version(self.name, source, run_id=run_id or self.source.run_id,
                                         model_id=model_id)
        return str(mv.version)

    def tag(self, version: str, key: str, value: str) -> None:
        self.client.set_tag(self.name, version, key, value)

    def tags(self, version: str) -> dict[str, str]:
        return self.client.get_model_version(self.name, version).tags


def version_at(centre: ControlCentre, project: str, stage: str) -> str | None:
    try:
        with urllib.request.urlopen(centre.backend.url(project, stage) + "/version", timeout=2) as r:
            return str(json.loads(r.read())["version"])
    except (OSError, ValueError, KeyError):
        return None


def has_status(m: Registered, version: str, status: str) -> Callable[[], bool]:
    return lambda: m.tags(version).get(names.TAG_STATUS) == status


def test_tagging_deploy_production_makes_the_version_serve(centre, model):
    v1 = model.new_version()
    model.tag(v1, "deploy", "production")
    wait_until(has_status(model, v1, "in_service"), "v1 in service")
    tags = model.tags(v1)
    assert tags[names.TAG_ENDPOINT] == f"{model.name}-production"
    assert tags[names.TAG_MESSAGE].startswith(f"serving at {model.name}-production")
    assert version_at(centre, model.name, "production") == v1


def test_a_newer_version_supersedes_and_an_older_tag_rolls_back(centre, model):
    v1, v2 = model.new_version(), model.new_version()
    model.tag(v1, "deploy", "production")
    wait_until(has_status(model, v1, "in_service"), "v1 in service")
    model.tag(v2, "deploy", "production")
    wait_until(has_status(model, v1, "superseded"), "v1 superseded")
    assert version_at(centre, model.name, "production") == v2
    assert "deploy" not in model.tags(v1)
    model.tag(v1, "deploy", "production")
    wait_until(has_status(model, v2, "rolled_back"), "v2 rolled back")
    assert version_at(centre, model.name, "production") == v1
    assert model.tags(v1)[names.TAG_STATUS] == "in_service"


def test_deprecating_the_live_version_rolls_back_then_retires(centre, model):
    v1, v2 = model.new_version(), model.new_version()
    model.tag(v1, "deploy", "production")
    wait_until(has_status(model, v1, "in_service"), "v1 in service")
    model.tag(v2, "deploy", "production")
    wait_until(has_status(model, v1, "superseded"), "v1 superseded")
    model.tag(v2, "deprecated", "true")
    wait_until(has_status(model, v2, "retired"), "v2 retired")
    assert version_at(centre, model.name, "production") == v1
    assert model.tags(v1)["deploy"] == "production"
    model.tag(v1, "deprecated", "true")
    wait_until(has_status(model, v1, "retired"), "v1 retired")
    wait_until(lambda: version_at(centre, model.name, "production") is None, "endpoint gone")
    assert "no earlier good version" in model.tags(v1)[names.TAG_MESSAGE]


def test_a_deploy_tag_on_a_deprecated_version_is_refused_in_the_tags(centre, model):
    v1 = model.new_version()
    model.tag(v1, "deprecated", "true")
    model.tag(v1, "deploy", "production")
    wait_until(has_status(model, v1, "failed"), "refusal recorded")
    assert "deprecated" in model.tags(v1)[names.TAG_MESSAGE]
    assert "deploy" not in model.tags(v1)
    assert version_at(centre, model.name, "production") is None


def pyfunc_version(model: Registered, tmp_path, behaviour: str) -> str:
    """A version whose model misbehaves: 'load' raises when loaded, 'exit' ends the process
    while loading without a word, 'predict' answers with the wrong number of rows."""
    import mlflow
    import pandas as pd

    code = tmp_path / f"bad_{behaviour}.py"
    code.write_text(
        "import os\n"
        "import mlflow.pyfunc\n"
        "class Bad(mlflow.pyfunc.PythonModel):\n"
        "    def load_context(self, context):\n"
        f"        if {behaviour == 'load'!r}:\n"
        "            raise RuntimeError('weights file is corrupt')\n"
        # Only in the server: log_model loads the model in this test process too, to check
        # the input example.
        f"        if {behaviour == 'exit'!r} and os.getpid() != {os.getpid()}:\n"
        "            os._exit(3)\n"
        "    def predict(self, context, model_input, params=None):\n"
        "        return [0]\n"
        "set_model = mlflow.models.set_model(Bad())\n")
    mlflow.set_tracking_uri(model.server.url)
    example = pd.DataFrame({"mean_radius": [1.0, 2.0, 3.0]})
    with mlflow.start_run() as run:
        info = mlflow.pyfunc.log_model(name="model", python_model=str(code),
                                       input_example=example, pip_requirements=["pandas"])
    return model.new_version(source=info.model_uri, run_id=run.info.run_id)


@pytest.mark.parametrize("behaviour, reason", [("load", "did not start"),
                                                ("predict", "smoke test")])
def test_a_broken_version_fails_and_the_live_one_keeps_serving(centre, model, tmp_path,
                                                               behaviour, reason):
    v1 = model.new_version()
    model.tag(v1, "deploy", "production")
    wait_until(has_status(model, v1, "in_service"), "v1 in service")
    bad = pyfunc_version(model, tmp_path, behaviour)
    model.tag(bad, "deploy", "production")
    wait_until(has_status(model, bad, "failed"), "failure recorded")
    message = model.tags(bad)[names.TAG_MESSAGE]
    assert reason in message and f"version {v1} keeps serving" in message
    assert "deploy" not in model.tags(bad)
    assert version_at(centre, model.name, "production") == v1
    assert model.tags(v1)[names.TAG_STATUS] == "in_service"


def test_a_failed_start_quotes_its_own_log_not_an_earlier_starts_error(centre, model,
                                                                      tmp_path):
    """Every start of an endpoint appends to one log: a version that dies without a word
    must not be blamed with the error an earlier version logged."""
    v1 = model.new_version()
    model.tag(v1, "deploy", "production")
    wait_until(has_status(model, v1, "in_service"), "v1 in service")
    corrupt = pyfunc_version(model, tmp_path, "load")
    model.tag(corrupt, "deploy", "production")
    wait_until(has_status(model, corrupt, "failed"), "first failure recorded")
    assert "weights file is corrupt" in model.tags(corrupt)[names.TAG_MESSAGE]
    silent = pyfunc_version(model, tmp_path, "exit")
    model.tag(silent, "deploy", "production")
    wait_until(has_status(model, silent, "failed"), "second failure recorded")
    message = model.tags(silent)[names.TAG_MESSAGE]
    assert "did not start" in message and f"version {v1} keeps serving" in message
    assert "weights file is corrupt" not in message
    assert version_at(centre, model.name, "production") == v1


def test_switching_versions_under_load_fails_no_request(centre, model, trained, mlflow_server):
    v1, v2 = model.new_version(), model.new_version()
    model.tag(v1, "deploy", "production")
    wait_until(has_status(model, v1, "in_service"), "v1 in service")
    smoke = json.loads(mlflow_server.client.run_artifact(model.source.run_id,
                                                         names.SMOKE_TEST_ARTIFACT))
    split = smoke["dataframe_split"]
    body = json.dumps({"dataframe_split": {"columns": split["columns"],
                                           "data": split["data"][:1]}}).encode()
    url = centre.backend.url(model.name, "production") + "/invocations"
    with Load(url, body) as load:
        time.sleep(1)
        model.tag(v2, "deploy", "production")
        wait_until(has_status(model, v2, "in_service"), "v2 in service")
        model.tag(v1, "deploy", "production")
        wait_until(has_status(model, v1, "in_service"), "v1 back in service")
        time.sleep(1)
    assert load.failures == []
    assert load.ok > 50


def test_a_lost_webhook_is_made_good_by_the_reconciler(centre, model):
    from mlops_control import webhooks

    # Point MLflow's webhook elsewhere: the control centre hears nothing of what follows.
    assert centre.wait_idle(120)
    webhooks.ensure(model.client, "http://127.0.0.1:9/nowhere", "x")
    try:
        v1 = model.new_version()
        model.tag(v1, "deploy", "staging")
        time.sleep(1.5)
        assert centre.wait_idle(120)
        assert version_at(centre, model.name, "staging") is None
    finally:
        webhooks.ensure(model.client, centre.receiver.url,
                        webhooks.local_secret(centre.settings.secrets_dir))
    centre.request_all("periodic")
    wait_until(has_status(model, v1, "in_service"), "v1 in service after reconcile")
    assert version_at(centre, model.name, "staging") == v1


def test_an_endpoint_killed_is_restored_by_the_watchdog(centre, model):
    v1 = model.new_version()
    model.tag(v1, "deploy", "production")
    wait_until(has_status(model, v1, "in_service"), "v1 in service")
    endpoint = f"{model.name}-production"
    pid = centre.backend._managed(endpoint).pid()
    procs.stop_group(pid, timeout=5)
    wait_until(lambda: version_at(centre, model.name, "production") is None, "endpoint down")
    wait_until(lambda: version_at(centre, model.name, "production") == v1, "endpoint back")
    wait_until(has_status(model, v1, "in_service"), "v1 recorded in service again")


def test_a_retired_endpoint_is_never_taken_for_a_crashed_one(centre, model):
    # Seen in the demo: "endpoint process gone; restoring it" logged for every retire, because
    # the watchdog looked while the process drained and its record was still there.
    v1 = model.new_version()
    model.tag(v1, "deploy", "production")
    wait_until(has_status(model, v1, "in_service"), "v1 in service")
    endpoint = f"{model.name}-production"
    seen_crashed: list[float] = []
    done = threading.Event()

    def look_as_the_watchdog_does() -> None:
        while not done.is_set():
            for record in centre.backend.records(model.name):
                if not centre.backend.running(record.endpoint):
                    seen_crashed.append(time.monotonic())
            time.sleep(0.005)

    watcher = threading.Thread(target=look_as_the_watchdog_does, daemon=True)
    watcher.start()
    try:
        model.tag(v1, "deprecated", "true")
        wait_until(has_status(model, v1, "retired"), "v1 retired")
    finally:
        done.set()
        watcher.join()
    assert centre.backend._managed(endpoint).pid() is None
    assert seen_crashed == []


def test_a_refused_tag_on_another_stage_does_not_lose_the_rollback(centre, model):
    # Issue 13.10: v2 served staging, v3 replaced it, then deploy=prod (no such stage) on v2
    # was refused, overwriting v2's status tags; deprecating v3 removed the endpoint.
    v2, v3 = model.new_version(), model.new_version()
    model.tag(v2, "deploy", "staging")
    wait_until(has_status(model, v2, "in_service"), "v2 in service")
    model.tag(v3, "deploy", "staging")
    wait_until(has_status(model, v2, "superseded"), "v2 superseded")
    model.tag(v2, "deploy", "prod")
    wait_until(has_status(model, v2, "failed"), "deploy=prod refused")
    assert "unknown stage 'prod'" in model.tags(v2)[names.TAG_MESSAGE]
    assert model.tags(v2)[names.stage_status_tag("staging")] == "superseded"
    model.tag(v3, "deprecated", "true")
    wait_until(has_status(model, v3, "retired"), "v3 retired")
    assert version_at(centre, model.name, "staging") == v2
    assert model.tags(v2)[names.TAG_STATUS] == "in_service"
    assert model.tags(v2)["deploy"] == "staging"
    assert f"rolled back to version {v2}" in model.tags(v3)[names.TAG_MESSAGE]


def test_two_versions_tagged_while_the_centre_was_away_deploy_the_newest_and_supersede_the_other(
        centre, model):
    # Issue 13.11: the loser was marked failed though it was never tried.
    from mlops_control import webhooks

    assert centre.wait_idle(120)
    webhooks.ensure(model.client, "http://127.0.0.1:9/nowhere", "x")
    try:
        v2, v3 = model.new_version(), model.new_version()
        model.tag(v2, "deploy", "staging")
        model.tag(v3, "deploy", "staging")
    finally:
        webhooks.ensure(model.client, centre.receiver.url,
                        webhooks.local_secret(centre.settings.secrets_dir))
    centre.request_all("start-up")
    wait_until(has_status(model, v3, "in_service"), "v3 in service")
    assert version_at(centre, model.name, "staging") == v3
    loser = model.tags(v2)
    assert loser[names.TAG_STATUS] == "superseded"
    assert loser[names.TAG_MESSAGE].startswith("deploy=staging not deployed: version "
                                               f"{v3} was requested for staging too")
    assert "the newest version wins" in loser[names.TAG_MESSAGE]
    assert "deploy" not in loser
    # Never tried, so never a rollback target: deprecating v3 removes the endpoint.
    model.tag(v3, "deprecated", "true")
    wait_until(has_status(model, v3, "retired"), "v3 retired")
    wait_until(lambda: version_at(centre, model.name, "staging") is None, "endpoint gone")


def aliases(m: Registered, version: str) -> tuple[str, ...]:
    return m.client.get_model_version(m.name, version).aliases


def test_an_alias_deploys_moves_and_retires_like_a_deploy_tag(centre, model):
    import mlflow

    client = mlflow.MlflowClient(model.server.url)
    v1, v2 = model.new_version(), model.new_version()
    client.set_registered_model_alias(model.name, "staging", v1)
    wait_until(has_status(model, v1, "in_service"), "v1 in service via @staging")
    assert version_at(centre, model.name, "staging") == v1
    assert model.tags(v1)[names.TAG_MESSAGE].endswith("(aliased @staging)")
    client.set_registered_model_alias(model.name, "staging", v2)
    wait_until(has_status(model, v1, "superseded"), "v1 superseded when @staging moved")
    assert version_at(centre, model.name, "staging") == v2
    # A deploy tag against the alias is refused, naming the alias.
    model.tag(v1, "deploy", "staging")
    wait_until(has_status(model, v1, "failed"), "conflicting tag refused")
    assert "staging follows the alias @staging" in model.tags(v1)[names.TAG_MESSAGE]
    assert version_at(centre, model.name, "staging") == v2
    client.delete_registered_model_alias(model.name, "staging")
    wait_until(has_status(model, v2, "retired"), "v2 retired when @staging was deleted")
    wait_until(lambda: version_at(centre, model.name, "staging") is None, "endpoint gone")


def test_deprecating_the_champion_rolls_production_and_the_alias_back(centre, model):
    import mlflow

    client = mlflow.MlflowClient(model.server.url)
    v1, v2 = model.new_version(), model.new_version()
    client.set_registered_model_alias(model.name, "champion", v1)
    wait_until(has_status(model, v1, "in_service"), "v1 in service via @champion")
    client.set_registered_model_alias(model.name, "champion", v2)
    wait_until(has_status(model, v1, "superseded"), "v1 superseded")
    model.tag(v2, "deprecated", "true")
    wait_until(has_status(model, v2, "retired"), "v2 retired")
    assert version_at(centre, model.name, "production") == v1
    assert aliases(model, v1) == ("champion",) and aliases(model, v2) == ()
    assert "deploy" not in model.tags(v1)
    assert centre.wait_idle(120)
    assert version_at(centre, model.name, "production") == v1


def test_a_restarted_control_centre_brings_the_endpoints_back(mlflow_server, model, tmp_path):
    settings = make_settings(tmp_path / "state", endpoint_base_port=free_block())
    first = ControlCentre(settings, mlflow_server.url, stages=STAGES, reconcile_interval_s=3600,
                          serving_workers=1, receiver_port=0)
    first.start()
    try:
        v1 = model.new_version()
        model.tag(v1, "deploy", "production")
        wait_until(has_status(model, v1, "in_service"), "v1 in service")
    finally:
        first.stop()
    assert version_at(first, model.name, "production") is None
    second = ControlCentre(settings, mlflow_server.url, stages=STAGES,
                           reconcile_interval_s=3600, serving_workers=1, receiver_port=0)
    second.start()
    try:
        wait_until(lambda: version_at(second, model.name, "production") == v1, "endpoint back")
    finally:
        second.stop()
