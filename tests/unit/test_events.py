"""Webhook verification and event parsing: what gets in and what is turned away, and why."""

from __future__ import annotations

import json

import pytest

from mlops_control import events
from mlops_control.errors import EventError

SECRET = "s3cret-for-tests"
NOW = 1_790_000_000


def delivery(data: dict, entity="model_version_tag", action="set", *, secret=SECRET,
             ts: int = NOW, delivery_id="7f8a2c1e-0000-4000-8000-000000000001"):
    # json.dumps with default separators: exactly how MLflow serialises the payload it signs.
    body = json.dumps({"entity": entity, "action": action,
                       "timestamp": "2026-09-21T12:00:00+00:00", "data": data}).encode()
    headers = {"X-MLflow-Signature": events.sign_webhook(secret, delivery_id, str(ts), body),
               "X-MLflow-Delivery-Id": delivery_id, "X-MLflow-Timestamp": str(ts)}
    return headers, body


TAG = {"name": "test-project", "version": "3", "key": "deploy", "value": "production"}


def test_a_genuine_delivery_is_accepted_and_parsed():
    headers, body = delivery(TAG)
    delivery_id = events.verify_webhook(headers, body, SECRET, now=NOW + 10)
    event = events.parse_webhook(delivery_id, body)
    assert (event.event, event.model, event.version, event.key, event.value) == (
        "model_version_tag.set", "test-project", "3", "deploy", "production")
    assert event.is_actionable


def test_a_signature_made_with_another_secret_is_refused_as_401():
    headers, body = delivery(TAG, secret="not-the-secret")
    with pytest.raises(EventError) as err:
        events.verify_webhook(headers, body, SECRET, now=NOW)
    assert err.value.status == 401 and "signature" in err.value.reason


def test_a_body_changed_after_signing_is_refused():
    headers, body = delivery(TAG)
    with pytest.raises(EventError) as err:
        events.verify_webhook(headers, body.replace(b"production", b"staging"), SECRET, now=NOW)
    assert err.value.status == 401


def test_a_delivery_older_than_five_minutes_is_refused_as_stale():
    headers, body = delivery(TAG, ts=NOW - 301)
    with pytest.raises(EventError) as err:
        events.verify_webhook(headers, body, SECRET, now=NOW)
    assert err.value.status == 401 and "stale" in err.value.reason


def test_an_oversized_body_is_refused_as_413_before_anything_else():
    with pytest.raises(EventError) as err:
        events.verify_webhook({}, b"x" * (events.MAX_WEBHOOK_BYTES + 1), SECRET, now=NOW)
    assert err.value.status == 413


def test_a_delivery_without_signature_is_refused():
    headers, body = delivery(TAG)
    del headers["X-MLflow-Signature"]
    with pytest.raises(EventError) as err:
        events.verify_webhook(headers, body, SECRET, now=NOW)
    assert err.value.status == 401


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"entity": "x"}',
                                  b'{"entity": "model_version_tag", "action": "set", "data": {}}',
                                  b'{"entity": "prompt", "action": "created", "data": {"name": "x"}}'])
def test_malformed_bodies_are_refused_as_400(body):
    with pytest.raises(EventError) as err:
        events.parse_webhook("7f8a2c1e-0000", body)
    assert err.value.status == 400


def test_our_own_status_tags_are_not_actionable():
    _, body = delivery({**TAG, "key": "deployment.status", "value": "in_service"})
    assert not events.parse_webhook("7f8a2c1e-0000", body).is_actionable


def s3_event(key: str, **detail):
    return {"version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103",
            "detail-type": "Object Created", "source": "aws.s3", "account": "111122223333",
            "time": "2026-11-26T12:00:00Z", "region": "eu-west-1",
            "resources": ["arn:aws:s3:::data-bucket"],
            "detail": {"version": "0", "bucket": {"name": "data-bucket"},
                       "object": {"key": key, "size": 1024, "etag": "b1946ac92492d2347c6235b4d2611184",
                                  "sequencer": "00617F08299329D189"}, **detail}}


def test_an_s3_upload_under_a_project_prefix_is_new_data_for_that_project():
    event = events.parse_s3_object_created(s3_event("data/test-project/2026-11-26.csv"), "data")
    assert event.project == "test-project"
    assert event.location == "s3://data-bucket/data/test-project/2026-11-26.csv"


@pytest.mark.parametrize("key", ["data/../etc/passwd.csv", "data/Test_Project/x.csv",
                                 "data/test-project/.hidden.csv", "data/test-project/x.exe",
                                 "other/test-project/x.csv", "data/x.csv"])
def test_s3_keys_that_traverse_or_break_naming_are_refused(key):
    with pytest.raises(EventError):
        events.parse_s3_object_created(s3_event(key), "data")


def test_execution_names_are_stable_bounded_and_distinct():
    a = events.execution_name("test-project", "production", "3", "delivery-1")
    assert a == events.execution_name("test-project", "production", "3", "delivery-1")
    assert a != events.execution_name("test-project", "production", "3", "delivery-2")
    assert len(a) <= 80 and all(c.isalnum() or c in "-_" for c in a)
