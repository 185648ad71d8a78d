"""Load against a local endpoint while its version is switched by tag, over and over: zero
failed requests, and how long a switch takes, from the tag to the first answer of the new
version. ``make test`` runs a short round (about 15 s, two switches); ``make test-soak`` the
60-second one with a switch every 10 s."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from mlops_control.backends import local
from tests.live import Load, percentile, wait_until
from tests.reliability import figures
from tests.reliability.conftest import deployments, endpoint_url, running_centre

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def centre(rel_mlflow, tmp_path_factory) -> Any:
    with running_centre(rel_mlflow.url, tmp_path_factory.mktemp("load-centre")) as cc:
        yield cc


def switching(centre, model, seconds: float, every: float, key: str) -> None:
    versions = {0: model.new_version(model.sources.zero), 1: model.new_version(model.sources.one)}
    model.tag(versions[0], "deploy", "production")
    wait_until(model.has_status(versions[0], "in_service"), "the first version in service")
    url = endpoint_url(centre, model.name)
    swaps: list[float] = []
    control = local.control

    def timed_control(sock: Any, message: dict[str, Any], timeout: float = 30.0) -> Any:
        started = time.monotonic()
        answer = control(sock, message, timeout)
        if message.get("action") == "swap":
            swaps.append(time.monotonic() - started)
        return answer

    local.control = timed_control  # type: ignore[assignment]
    latencies: list[float] = []
    live = 0
    try:
        with Load(url, json.dumps(model.sources.rows).encode(), clients=4) as load:
            started = time.monotonic()
            time.sleep(min(2.0, every / 2))
            while time.monotonic() - started < seconds - every / 2:
                target = 1 - live
                tagged_at = time.monotonic()
                model.tag(versions[target], "deploy", "production")
                first = wait_until(lambda t=target, at=tagged_at: load.first_answer(t, at),
                                   f"version {versions[target]} answering", timeout=120)
                latencies.append(first - tagged_at)
                wait_until(model.has_status(versions[target], "in_service"), "recorded")
                live = target
                rest = every - (time.monotonic() - tagged_at)
                if rest > 0:
                    time.sleep(rest)
            time.sleep(1.0)
        duration = time.monotonic() - started
    finally:
        local.control = control  # type: ignore[assignment]
    assert centre.wait_idle(60)
    all_latencies = load.latencies()
    figures.record(key, seconds=round(duration, 1), switches=len(latencies),
                   requests=len(load.answers), failed=len(load.failures),
                   requests_per_second=round(len(load.answers) / duration),
                   tag_to_new_version_s_median=round(sorted(latencies)[len(latencies) // 2], 2),
                   tag_to_new_version_s_max=round(max(latencies), 2),
                   swap_s_max=round(max(swaps), 2) if swaps else None,
                   request_latency_ms_p50=round(percentile(all_latencies, 50) * 1000, 1),
                   request_latency_ms_p99=round(percentile(all_latencies, 99) * 1000, 1),
                   request_latency_ms_max=round(all_latencies[-1] * 1000, 1))
    assert load.failures == [], load.failures[:5]
    assert len(deployments(centre, model.name)) == len(latencies) + 1
    predictions = {a.prediction for a in load.answers}
    assert predictions == {0, 1}
    assert len(latencies) >= max(1, int(seconds // every) - 1)


def test_switching_versions_under_load_fails_no_request_short(centre, model):
    switching(centre, model, seconds=15, every=7, key="load.switch_short")


@pytest.mark.soak
def test_switching_versions_every_10_s_for_60_s_fails_no_request(centre, model):
    switching(centre, model, seconds=60, every=10, key="load.switch_soak")
