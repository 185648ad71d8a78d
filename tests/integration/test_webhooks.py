"""A real MLflow server sending real, signed webhooks to the real receiver."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from mlops_control import events, webhooks
from mlops_control.dedupe import SeenDeliveries
from mlops_control.receiver import Receiver

pytestmark = pytest.mark.integration
SECRET = "integration-secret-value"


class Recorder:
    """A receiver that keeps what MLflow really sent, to replay and tamper with it."""

    def __init__(self, tmp_path) -> None:
        self.events: list[events.RegistryEvent] = []
        self.raw: list[tuple[dict, bytes]] = []
        self.arrived = threading.Condition()
        self.receiver = Receiver("127.0.0.1", 0, SECRET, SeenDeliveries(tmp_path / "seen.db"),
                                 on_event=self._on_event, status=lambda: {})
        original = self.receiver.handle_webhook

        def recording(headers, body):
            with self.arrived:
                self.raw.append((headers, body))
            return original(headers, body)

        self.receiver.handle_webhook = recording  # type: ignore[method-assign]

    def _on_event(self, event):
        with self.arrived:
            self.events.append(event)
            self.arrived.notify_all()

    def wait_for(self, predicate, timeout=20.0):
        deadline = time.monotonic() + timeout
        with self.arrived:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"not delivered in {timeout}s; got {self.events}")
                self.arrived.wait(remaining)


@pytest.fixture
def recorder(tmp_path, mlflow_server, trained):
    rec = Recorder(tmp_path)
    rec.receiver.start()
    webhooks.ensure(mlflow_server.client, rec.receiver.url, SECRET, name="test-receiver")
    yield rec
    # Deactivate it so later tests' tag writes do not go to a closed port.
    webhooks.ensure(mlflow_server.client, "http://127.0.0.1:9/gone", SECRET, name="test-receiver")
    rec.receiver.stop()


def post(url: str, body: bytes, headers: dict) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_registering_the_webhook_twice_leaves_one_webhook(mlflow_server):
    first = webhooks.ensure(mlflow_server.client, "http://127.0.0.1:9/a", SECRET, name="twice")
    second = webhooks.ensure(mlflow_server.client, "http://127.0.0.1:9/b", SECRET, name="twice")
    hooks = [h for h in mlflow_server.client.list_webhooks() if h["name"] == "twice"]
    assert first.created and not second.created
    assert [h["url"] for h in hooks] == ["http://127.0.0.1:9/b"]
    kinds = {(e["entity"], e["action"]) for e in hooks[0]["events"]}
    assert ("MODEL_VERSION_TAG", "SET") in kinds and ("MODEL_VERSION", "CREATED") in kinds


def test_the_webhooks_description_in_mlflow_names_the_events_it_subscribes_to(mlflow_server):
    webhooks.ensure(mlflow_server.client, "http://127.0.0.1:9/d", SECRET, name="described")
    hook = next(h for h in mlflow_server.client.list_webhooks() if h["name"] == "described")
    subscribed = {f"{e['entity']}.{e['action']}".lower() for e in hook["events"]}
    assert {"model_version_alias.created", "model_version_alias.deleted"} <= subscribed
    description = hook["description"]
    assert "model_version_alias.created/deleted" in description
    # The events it lists, e.g. "(model_version.created, model_version_tag.set/deleted)".
    listed = description[description.index("(") + 1: description.rindex(")")]
    named = {f"{entity}.{action}" for group in listed.split(", ")
             for entity, _, actions in [group.partition(".")] for action in actions.split("/")}
    assert named == subscribed


def test_a_tag_set_in_mlflow_arrives_signed_and_is_accepted(recorder, mlflow_server, trained):
    version = trained["versions"][0]
    mlflow_server.client.set_tag("test-project", version, "deploy", "staging-check")
    recorder.wait_for(lambda: any(e.key == "deploy" for e in recorder.events))
    event = next(e for e in recorder.events if e.key == "deploy")
    assert (event.event, event.model, event.version, event.value) == (
        "model_version_tag.set", "test-project", version, "staging-check")
    mlflow_server.client.delete_tag("test-project", version, "deploy")
    recorder.wait_for(lambda: any(e.event == "model_version_tag.deleted" for e in recorder.events))


def test_replayed_forged_stale_and_oversized_deliveries_start_nothing(recorder, mlflow_server, trained):
    version = trained["versions"][0]
    mlflow_server.client.set_tag("test-project", version, "deprecated", "false")
    recorder.wait_for(lambda: any(e.key == "deprecated" for e in recorder.events))
    raw_headers, body = next((h, b) for h, b in recorder.raw if b'"deprecated"' in b)
    # Keep what MLflow signed with; urllib sets Content-Length for each body itself.
    headers = {k: v for k, v in raw_headers.items() if k.lower().startswith("x-mlflow-")}
    accepted = len(recorder.events)
    url = recorder.receiver.url

    # The very same delivery again: a replay.
    assert post(url, body, headers) == (200, {"ignored": "duplicate delivery"})
    # Same delivery id, tampered body.
    status, answer = post(url, body.replace(b"false", b"true"), headers)
    assert (status, answer["error"]) == (401, "signature does not match")
    # A fresh delivery id signed with the wrong secret: forged.
    now = str(int(time.time()))
    forged = {**headers, "X-MLflow-Delivery-Id": "11111111-2222-3333-4444-555555555555",
              "X-MLflow-Timestamp": now,
              "X-MLflow-Signature": events.sign_webhook("guess", "11111111-2222-3333-4444-555555555555", now, body)}
    assert post(url, body, forged)[0] == 401
    # Correctly signed but ten minutes old: stale.
    old = str(int(time.time()) - 600)
    stale = {**forged, "X-MLflow-Timestamp": old,
             "X-MLflow-Signature": events.sign_webhook(SECRET, forged["X-MLflow-Delivery-Id"], old, body)}
    status, answer = post(url, body, stale)
    assert status == 401 and answer["error"].startswith("stale delivery")
    # Oversized: refused from its Content-Length, before the body is read.
    assert post(url, b"x" * (events.MAX_WEBHOOK_BYTES + 1), headers)[0] == 413
    # Correctly signed nonsense: malformed.
    junk = b'{"entity": "model_version_tag", "action": "set", "data": {"name": ""}}'
    fresh = {**forged, "X-MLflow-Delivery-Id": "99999999-2222-3333-4444-555555555555",
             "X-MLflow-Signature": events.sign_webhook(SECRET, "99999999-2222-3333-4444-555555555555", now, junk)}
    assert post(url, junk, fresh)[0] == 400

    assert len(recorder.events) == accepted
    assert recorder.receiver.counts["rejected"] == 5 and recorder.receiver.counts["duplicate"] == 1


def test_an_alias_set_and_deleted_in_mlflow_arrives_signed_and_is_accepted(
        recorder, mlflow_server, trained):
    import mlflow

    client = mlflow.MlflowClient(mlflow_server.url)
    version = trained["versions"][0]
    client.set_registered_model_alias("test-project", "webhook-check", version)
    recorder.wait_for(lambda: any(e.event == "model_version_alias.created"
                                  for e in recorder.events))
    created = next(e for e in recorder.events if e.event == "model_version_alias.created")
    assert (created.model, created.version, created.key) == (
        "test-project", version, "alias:webhook-check")
    client.delete_registered_model_alias("test-project", "webhook-check")
    recorder.wait_for(lambda: any(e.event == "model_version_alias.deleted"
                                  for e in recorder.events))
    deleted = next(e for e in recorder.events if e.event == "model_version_alias.deleted")
    # MLflow names no version when an alias is deleted: the reconciler finds what to retire.
    assert (deleted.model, deleted.version, deleted.key) == (
        "test-project", None, "alias:webhook-check")
