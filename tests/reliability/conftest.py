"""Fixtures of the reliability tests: an MLflow server of their own, registered versions whose
answers say which version served, a load generator, signed webhook deliveries.

These tests get their own MLflow server (not the session one) because a control centre
converges every model of its registry: on the shared server it would start endpoints for
the versions other tests tagged, and their tests would see them move.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mlops_control import events, names
from mlops_control.control_centre import ControlCentre
from mlops_control.local_server import LocalMLflow
from mlops_control.registry import RegistryClient
from tests.conftest import Server, make_settings
from tests.lambdas.conftest import aws, context  # noqa: F401 - fixtures of the Lambda tests
from tests.live import free_block, wait_until
from tests.model_fixtures import (
    Shelf,
    shelf,  # noqa: F401 - a fixture, found by name
)
from tests.models import PIP, split_request
from tests.reliability import figures

SMOKE_ROWS = 40


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    figures.save()


# --- waiting ---------------------------------------------------------------------------------
# --- an MLflow server of our own, and versions to deploy ----------------------------------
@dataclass
class Sources:
    """Logged models to register versions from: ``forest`` answers like test-project, the
    constant models answer 0 or 1 to every row, so an answer says which version gave it."""

    run_id: str
    forest: str
    zero: str
    one: str
    smoke: dict[str, Any]
    rows: dict[str, Any]
    """One row of the smoke slice, as a scoring request."""


def start_mlflow(state_dir: Path) -> tuple[LocalMLflow, str]:
    server = LocalMLflow(make_settings(state_dir))
    return server, server.start()


@pytest.fixture(scope="session")
def rel_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server, url = start_mlflow(tmp_path_factory.mktemp("rel-mlflow"))
    try:
        yield Server(server.settings, url)
    finally:
        server.stop()


def log_sources(url: str, models: Shelf) -> Sources:
    import mlflow
    import mlflow.sklearn
    from mlflow.models import infer_signature

    from tests.models import FOREST_TYPES

    client = mlflow.MlflowClient(url)
    experiment = client.get_experiment_by_name("reliability")
    experiment_id = experiment.experiment_id if experiment else client.create_experiment(
        "reliability")
    run = client.create_run(experiment_id)
    forest = models.forest()
    smoke = split_request(forest.X, slice(0, SMOKE_ROWS))
    client.log_dict(run.info.run_id, smoke, names.SMOKE_TEST_ARTIFACT)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(url)
    uris = {}
    # mlflow resolves some calls through the process-wide tracking URI whatever a call is
    # given: it is put back, so that no other test's control centre talks to this server.
    with mlflow.start_run(run_id=run.info.run_id):
        for key, saved, trusted in (
                ("forest", forest, FOREST_TYPES),
                ("zero", models.constant(0), ["sklearn.dummy.DummyClassifier"]),
                ("one", models.constant(1), ["sklearn.dummy.DummyClassifier"])):
            X = saved.X
            info = mlflow.sklearn.log_model(
                saved.estimator, name=key, signature=infer_signature(X, saved.predict(X)),
                input_example=X.head(3), pip_requirements=PIP, serialization_format="skops",
                skops_trusted_types=trusted)
            uris[key] = info.model_uri
    mlflow.set_tracking_uri(previous)
    return Sources(run_id=run.info.run_id, forest=uris["forest"], zero=uris["zero"],
                   one=uris["one"], smoke=smoke, rows=split_request(forest.X, slice(0, 1)))


@pytest.fixture(scope="session")
def sources(rel_mlflow: Server, shelf: Shelf) -> Sources:  # noqa: F811
    return log_sources(rel_mlflow.url, shelf)


class Registered:
    """One registered model of the tests, with helpers to add versions and read tags."""

    def __init__(self, url: str, name: str, sources: Sources) -> None:
        self.url, self.name, self.sources = url, name, sources
        self.client = RegistryClient(url)

    def new_version(self, source: str | None = None) -> str:
        """Register a version over MLflow's REST API (the mlflow client would resolve the
        registry from process-wide settings, which other tests point elsewhere)."""
        from mlops_control.errors import RegistryError

        with contextlib.suppress(RegistryError):  # already there
            self.client.request("POST", "/api/2.0/mlflow/registered-models/create",
                                body={"name": self.name})
        source = source or self.sources.forest
        body = {"name": self.name, "source": source, "run_id": self.sources.run_id}
        if source.startswith("models:/m-"):
            body["model_id"] = source.removeprefix("models:/")
        created = self.client.request("POST", "/api/2.0/mlflow/model-versions/create",
                                      body=body)
        version = str(created["model_version"]["version"])
        wait_until(lambda: self.client.get_model_version(self.name, version).status == "READY",
                   f"{self.name}/{version} ready", timeout=60)
        return version

    def tag(self, version: str, key: str, value: str) -> None:
        self.client.set_tag(self.name, version, key, value)

    def tags(self, version: str) -> dict[str, str]:
        return self.client.get_model_version(self.name, version).tags

    def status(self, version: str) -> str | None:
        return self.tags(version).get(names.TAG_STATUS)

    def has_status(self, version: str, status: str) -> Callable[[], bool]:
        return lambda: self.status(version) == status


    def delete(self) -> None:
        """Remove the model from the registry, so later control centres leave it alone."""
        with contextlib.suppress(Exception):
            self.client.request("DELETE", "/api/2.0/mlflow/registered-models/delete",
                                body={"name": self.name})


@pytest.fixture
def model(rel_mlflow: Server, sources: Sources) -> Iterator[Registered]:
    registered = Registered(rel_mlflow.url, f"rel-{uuid.uuid4().hex[:8]}", sources)
    yield registered
    registered.delete()


STAGES = frozenset({"staging", "production"})


@contextlib.contextmanager
def running_centre(url: str, state_dir: Path, **options: Any) -> Iterator[ControlCentre]:
    """A control centre in this process, on free ports, stopped (endpoints too) at the end."""
    settings = make_settings(state_dir, endpoint_base_port=free_block())
    options = {"stages": STAGES, "reconcile_interval_s": 3600, "serving_workers": 1,
               "receiver_port": 0, **options}
    centre = ControlCentre(settings, url, **options)
    centre.start()
    try:
        assert centre.wait_idle(120)
        yield centre
    finally:
        centre.stop()


def endpoint_url(centre: ControlCentre, project: str, stage: str = "production") -> str:
    return centre.backend.url(project, stage)


def deployments(centre: ControlCentre, project: str) -> list[dict[str, Any]]:
    """The deploy actions the control centre carried out for ``project`` (its history)."""
    with centre.history.lock:
        return [dict(i) for i in centre.history.items
                if i["project"] == project and i["action"] == "deploy"]


def version_at(url: str) -> str | None:
    """The version an endpoint says it serves (``GET /version``), or None if it is down."""
    try:
        conn = http.client.HTTPConnection(url.removeprefix("http://"), timeout=2)
        conn.request("GET", "/version")
        answer = conn.getresponse()
        body = answer.read()
        conn.close()
        return str(json.loads(body)["version"]) if answer.status == 200 else None
    except (OSError, ValueError, KeyError, http.client.HTTPException):
        return None


# --- signed deliveries -------------------------------------------------------------------
def signed(secret: str, body: bytes, delivery_id: str | None = None,
           ts: int | None = None) -> dict[str, str]:
    delivery_id = delivery_id or str(uuid.uuid4())
    stamp = str(int(time.time()) if ts is None else ts)
    return {"X-MLflow-Delivery-Id": delivery_id, "X-MLflow-Timestamp": stamp,
            "X-MLflow-Signature": events.sign_webhook(secret, delivery_id, stamp, body),
            "Content-Type": "application/json"}


def tag_body(model: str, version: str, key: str, value: str | None = None) -> bytes:
    data = {"name": model, "version": version, "key": key}
    if value is not None:
        data["value"] = value
    return json.dumps({"entity": "model_version_tag", "action": "set" if value is not None
                       else "deleted", "timestamp": "2026-11-26T12:00:00+00:00",
                       "data": data}).encode()


def http_post(url: str, body: bytes, headers: dict[str, str],
              timeout: float = 10) -> tuple[int, bytes]:
    host, _, path = url.removeprefix("http://").partition("/")
    conn = http.client.HTTPConnection(host, timeout=timeout)
    try:
        conn.request("POST", "/" + path, body=body, headers=headers)
        answer = conn.getresponse()
        return answer.status, answer.read()
    finally:
        conn.close()


@contextlib.contextmanager
def timed() -> Iterator[Callable[[], float]]:
    start = time.monotonic()
    end: list[float] = []
    yield lambda: (end[0] if end else time.monotonic()) - start
    end.append(time.monotonic())
