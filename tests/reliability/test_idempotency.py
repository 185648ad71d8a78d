"""The same thing said twice, or in the wrong order, ends in exactly one outcome: the same
webhook delivery, the same tag set twice, out-of-order deliveries, the same S3 event. The
count is taken where it shows: the control centre's history, the endpoint's model swaps
and the registry's tags, or the Step Functions executions."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

from lambdas import data_trigger
from mlops_control import webhooks
from mlops_control.backends import local
from tests import events as recorded
from tests.live import wait_until
from tests.reliability import figures
from tests.reliability.conftest import (
    deployments,
    endpoint_url,
    http_post,
    running_centre,
    signed,
    tag_body,
    version_at,
)

KEY = "idempotency"


@pytest.fixture(scope="module")
def centre(rel_mlflow, tmp_path_factory) -> Any:
    with running_centre(rel_mlflow.url, tmp_path_factory.mktemp("idem-centre")) as cc:
        yield cc


@pytest.fixture
def swaps(monkeypatch) -> list[str]:
    """Versions the control centre swapped into live endpoints, in order."""
    seen: list[str] = []
    control = local.control

    def counting(sock: Any, message: dict[str, Any], timeout: float = 30.0) -> Any:
        if message.get("action") == "swap":
            seen.append(str(message.get("version")))
        return control(sock, message, timeout)

    monkeypatch.setattr(local, "control", counting)
    return seen


def silenced(centre, model) -> None:
    """MLflow's own deliveries go nowhere: only what the test sends arrives."""
    assert centre.wait_idle(120)
    webhooks.ensure(model.client, "http://127.0.0.1:9/nowhere", "x")


def restore(centre, model) -> None:
    webhooks.ensure(model.client, centre.receiver.url,
                    webhooks.local_secret(centre.settings.secrets_dir))


@pytest.mark.integration
def test_the_same_delivery_twice_deploys_once(centre, model, swaps):
    v1 = model.new_version(model.sources.zero)
    silenced(centre, model)
    try:
        model.tag(v1, "deploy", "production")
        body = tag_body(model.name, v1, "deploy", "production")
        headers = signed(webhooks.local_secret(centre.settings.secrets_dir), body)
        answers = [http_post(centre.receiver.url, body, headers)[0] for _ in range(3)]
    finally:
        restore(centre, model)
    assert answers == [202, 200, 200]
    wait_until(model.has_status(v1, "in_service"), "v1 in service")
    assert centre.wait_idle(60)
    assert len(deployments(centre, model.name)) == 1
    figures.add(KEY, "same_delivery_one_deployment")


@pytest.mark.integration
def test_the_same_tag_set_twice_deploys_once_and_swaps_once(centre, model, swaps):
    v1 = model.new_version(model.sources.zero)
    v2 = model.new_version(model.sources.one)
    model.tag(v1, "deploy", "production")
    wait_until(model.has_status(v1, "in_service"), "v1 in service")
    for _ in range(2):  # MLflow sends two deliveries, with two ids
        model.tag(v2, "deploy", "production")
    wait_until(model.has_status(v2, "in_service"), "v2 in service")
    time.sleep(1.0)
    assert centre.wait_idle(60)
    model.tag(v2, "deploy", "production")  # and once more, after the switch
    time.sleep(1.0)
    assert centre.wait_idle(60)
    assert [d["version"] for d in deployments(centre, model.name)] == [v1, v2]
    assert swaps == [v2]
    assert version_at(endpoint_url(centre, model.name)) == v2
    figures.add(KEY, "same_tag_twice_one_deployment")


@pytest.mark.integration
def test_out_of_order_deliveries_end_in_the_registrys_state_with_one_deployment(
        centre, model, swaps):
    v1 = model.new_version(model.sources.zero)
    v2 = model.new_version(model.sources.one)
    silenced(centre, model)
    secret = webhooks.local_secret(centre.settings.secrets_dir)
    try:
        model.tag(v1, "deploy", "production")
        model.tag(v2, "deploy", "production")
        model.tag(v1, "deprecated", "true")
        # Delivered newest first, and the v1 deploy event last of all.
        for body in (tag_body(model.name, v1, "deprecated", "true"),
                     tag_body(model.name, v2, "deploy", "production"),
                     tag_body(model.name, v1, "deploy", "production")):
            assert http_post(centre.receiver.url, body, signed(secret, body))[0] == 202
    finally:
        restore(centre, model)
    wait_until(model.has_status(v2, "in_service"), "v2 in service")
    time.sleep(1.0)
    assert centre.wait_idle(60)
    assert [d["version"] for d in deployments(centre, model.name)] == [v2]
    assert swaps == []  # v1 never served: nothing to swap from
    assert version_at(endpoint_url(centre, model.name)) == v2
    assert "deploy" not in model.tags(v1)
    figures.add(KEY, "out_of_order_one_deployment")


def test_the_same_s3_event_delivered_five_times_starts_one_training(aws, context):
    event = recorded.load("s3_object_created")
    results = [data_trigger.handler(json.loads(json.dumps(event)), context)["result"]
               for _ in range(5)]
    assert results == ["started"] + ["duplicate"] * 4
    assert len(aws.executions(aws.train_arn)) == 1
    figures.add(KEY, "same_s3_event_one_execution")


def test_the_same_s3_event_delivered_concurrently_starts_one_training(aws, context):
    event = recorded.load("s3_object_created")
    results: list[str] = []
    lock = threading.Lock()

    def deliver() -> None:
        answer = data_trigger.handler(json.loads(json.dumps(event)), context)["result"]
        with lock:
            results.append(answer)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # One execution. (Step Functions answers simultaneous identical requests alike, so more
    # than one caller may report it as started; the outcome is what counts.)
    assert len(results) == 4 and "started" in results
    assert len(aws.executions(aws.train_arn)) == 1
    figures.add(KEY, "concurrent_s3_events_one_execution")
