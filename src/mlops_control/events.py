"""Incoming events, parsed at the edge into typed values; anything invalid is an EventError.

Three sources, one meaning ("look at this project again"):
- MLflow registry webhooks, signed as MLflow signs them:
  ``X-MLflow-Signature: v1,<base64 HMAC-SHA256(secret, "<delivery_id>.<timestamp>.<body>")>``;
- S3 "Object Created" events in EventBridge's shape (new training data on AWS);
- files landing in the local inbox folder ``<inbox>/<project>/`` (new training data locally).

Standard library only: the Lambdas import this module.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlops_control import names
from mlops_control.errors import EventError

SIGNATURE_HEADER = "x-mlflow-signature"
TIMESTAMP_HEADER = "x-mlflow-timestamp"
DELIVERY_ID_HEADER = "x-mlflow-delivery-id"
SIGNATURE_VERSION = "v1"

MAX_WEBHOOK_BYTES = 64 * 1024
"""MLflow's registry payloads are a few hundred bytes; anything near this is not MLflow."""
TOLERANCE_S = 300
"""Deliveries older (or further in the future) than five minutes are refused as stale."""

WEBHOOK_EVENTS = (
    "model_version.created",
    "model_version_tag.set",
    "model_version_tag.deleted",
    "model_version_alias.created",
    "model_version_alias.deleted",
)
DATA_SUFFIXES = (".csv", ".parquet", ".pq")
_DELIVERY_ID = re.compile(r"^[A-Za-z0-9-]{8,64}$")
_VERSION = re.compile(r"^[0-9]{1,9}$")
_MAX_TAG_VALUE = 5000


@dataclass(frozen=True)
class RegistryEvent:
    """A verified MLflow registry webhook delivery."""

    delivery_id: str
    event: str  # "<entity>.<action>", one of WEBHOOK_EVENTS
    model: str
    version: str | None
    key: str | None = None
    value: str | None = None

    @property
    def is_control_centre_write(self) -> bool:
        """Our own status and lineage writes: never a reason to act."""
        return self.key is not None and self.key.startswith(names.CONTROL_TAG_PREFIXES)

    @property
    def is_actionable(self) -> bool:
        if self.event.startswith("model_version_tag."):
            return self.key in (names.TAG_DEPLOY, names.TAG_DEPRECATED)
        return not self.is_control_centre_write


@dataclass(frozen=True)
class DataEvent:
    """New training data for a project."""

    event_id: str
    project: str
    location: str  # s3://bucket/key or a local path
    version: str  # S3 version id or ETag, or the file's SHA-256
    size: int


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    raise EventError(f"missing header {name}", 401 if name == SIGNATURE_HEADER else 400)


def verify_webhook(headers: Mapping[str, str], body: bytes, secret: str,
                   now: float | None = None) -> str:
    """Check size, headers, freshness and signature; return the delivery id."""
    if len(body) > MAX_WEBHOOK_BYTES:
        raise EventError(f"body of {len(body)} bytes exceeds {MAX_WEBHOOK_BYTES}", 413)
    if not secret:
        raise EventError("the receiver has no webhook secret configured", 500)
    signature = _header(headers, SIGNATURE_HEADER)
    delivery_id = _header(headers, DELIVERY_ID_HEADER)
    timestamp = _header(headers, TIMESTAMP_HEADER)
    if not _DELIVERY_ID.match(delivery_id):
        raise EventError("malformed delivery id", 400)
    # isdigit() alone admits '²' and other scripts' digits, which int() then refuses.
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 12:
        raise EventError("malformed timestamp", 400)
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > TOLERANCE_S:
        raise EventError(f"stale delivery: timestamp is {int(now - int(timestamp))}s off", 401)
    version, _, given = signature.partition(",")
    if version != SIGNATURE_VERSION or not given:
        raise EventError("signature is not in the v1,<base64> form", 401)
    expected = base64.b64encode(
        hmac.new(secret.encode(), f"{delivery_id}.{timestamp}.".encode() + body,
                 hashlib.sha256).digest()
    ).decode()
    if not hmac.compare_digest(expected, given.strip()):
        raise EventError("signature does not match", 401)
    return delivery_id


def sign_webhook(secret: str, delivery_id: str, timestamp: str, body: bytes) -> str:
    """The signature MLflow would send (for tests and for replaying recorded deliveries)."""
    digest = hmac.new(secret.encode(), f"{delivery_id}.{timestamp}.".encode() + body,
                      hashlib.sha256).digest()
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode()}"


def parse_webhook(delivery_id: str, body: bytes) -> RegistryEvent:
    """Turn a verified delivery's JSON body into a :class:`RegistryEvent`."""
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise EventError("body is not JSON") from None
    except RecursionError:
        raise EventError("body is nested too deeply to be an MLflow payload") from None
    if not isinstance(raw, dict):
        raise EventError("body is not a JSON object")
    entity, action, data = raw.get("entity"), raw.get("action"), raw.get("data")
    if not isinstance(entity, str) or not isinstance(action, str) or not isinstance(data, dict):
        raise EventError("body needs string 'entity' and 'action' and an object 'data'")
    event = f"{entity}.{action}"
    if event not in WEBHOOK_EVENTS:
        raise EventError(f"event {event!r} is not one the control centre subscribes to")
    model = _string(data, "name", 256)
    version = _string(data, "version", 16) if "version" in data else None
    if version is not None and not _VERSION.match(version):
        raise EventError(f"version {version!r} is not a version number")
    if event.startswith("model_version") and event != "model_version_alias.deleted" \
            and version is None:
        raise EventError(f"{event} without a version")
    key = _string(data, "key", 250) if entity == "model_version_tag" else None
    value = None
    if event == "model_version_tag.set":
        value = _string(data, "value", _MAX_TAG_VALUE)
    if entity == "model_version_alias":
        key = f"alias:{_string(data, 'alias', 256)}"
    return RegistryEvent(delivery_id=delivery_id, event=event, model=model, version=version,
                         key=key, value=value)


def _string(data: dict[str, Any], key: str, limit: int) -> str:
    value = data.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and key == "version":
        value = str(value)
    if not isinstance(value, str) or not value:
        raise EventError(f"data.{key} must be a non-empty string")
    if len(value) > limit or any(ord(c) < 32 for c in value):
        raise EventError(f"data.{key} is too long or holds control characters")
    return value


def project_from_key(key: str, prefix: str) -> tuple[str, str]:
    """``<prefix>/<project>/<file>`` → (project, file). Refuses traversal and odd names."""
    prefix = prefix.strip("/")
    parts = key.split("/")
    prefix_parts = prefix.split("/") if prefix else []
    if parts[: len(prefix_parts)] != prefix_parts:
        raise EventError(f"key {key!r} is not under the data prefix {prefix!r}/")
    rest = parts[len(prefix_parts):]
    if len(rest) < 2 or any(p in ("", ".", "..") for p in rest):
        raise EventError(f"key {key!r} is not of the form {prefix}/<project>/<file>")
    project, filename = rest[0], rest[-1]
    if not names.PROJECT_NAME_PATTERN.match(project):
        raise EventError(f"{project!r} in key {key!r} is not a valid project name")
    if filename.startswith(".") or not filename.lower().endswith(DATA_SUFFIXES):
        raise EventError(f"{filename!r} is not a .csv or .parquet data file")
    return project, filename


def parse_s3_object_created(event: Mapping[str, Any], data_prefix: str) -> DataEvent:
    """An EventBridge ``Object Created`` event from S3 → :class:`DataEvent`."""
    if event.get("source") != "aws.s3" or event.get("detail-type") != "Object Created":
        raise EventError("not an S3 Object Created event")
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise EventError("S3 event has no detail")
    bucket = (detail.get("bucket") or {}).get("name")
    obj = detail.get("object") or {}
    key = obj.get("key")
    if not isinstance(bucket, str) or not isinstance(key, str) or not bucket or not key:
        raise EventError("S3 event lacks bucket name or object key")
    # EventBridge sends keys URL-encoded the way S3 notifications do ('+' for spaces).
    key = urllib.parse.unquote_plus(key)
    if len(key) > 1024:
        raise EventError("S3 key is longer than S3 allows")
    project, _ = project_from_key(key, data_prefix)
    version = str(obj.get("version-id") or obj.get("etag") or "")
    event_id = str(event.get("id") or hashlib.sha256(f"{bucket}/{key}/{version}".encode())
                   .hexdigest())
    size = obj.get("size")
    return DataEvent(event_id=event_id, project=project, location=f"s3://{bucket}/{key}",
                     version=version, size=int(size) if isinstance(size, int) else 0)


def execution_name(*parts: str) -> str:
    """A Step Functions execution name derived from an event: the same event gives the same
    name, so a duplicate starts nothing new (names are unique per state machine for 90 days).
    At most 80 characters of ``[A-Za-z0-9-_]``."""
    readable = re.sub(r"[^A-Za-z0-9-]+", "-", "-".join(parts[:-1]) if len(parts) > 1
                      else "").strip("-")[:50]
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:24]
    return f"{readable}-{digest}" if readable else digest
