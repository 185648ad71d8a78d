"""Registering the control centre's webhook on an MLflow server, idempotently.

Run it any number of times: it finds the webhook by name and updates its address, events and
secret, or creates it. MLflow never returns a secret, so it is always re-sent.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from mlops_control import events, names
from mlops_control.registry import RegistryClient

WEBHOOK_NAME = "mlops-control-centre"


@dataclass(frozen=True)
class Registration:
    webhook_id: str
    created: bool
    url: str


def _event_body() -> list[dict[str, str]]:
    body = []
    for event in events.WEBHOOK_EVENTS:
        entity, _, action = event.partition(".")
        body.append({"entity": entity.upper(), "action": action.upper()})
    return body


def description() -> str:
    """What the webhook is for, naming the events it subscribes to (from the same list)."""
    actions: dict[str, list[str]] = {}
    for event in events.WEBHOOK_EVENTS:
        entity, _, action = event.partition(".")
        actions.setdefault(entity, []).append(action)
    listed = ", ".join(f"{entity}.{'/'.join(a)}" for entity, a in actions.items())
    return ("MLOps control centre: new versions, deploy/deprecated tags and stage aliases "
            f"({listed})")


def ensure(registry: RegistryClient, url: str, secret: str,
           name: str = WEBHOOK_NAME) -> Registration:
    wanted = {"name": name, "url": url, "events": _event_body(), "secret": secret,
              "status": "ACTIVE", "description": description()}
    for hook in registry.list_webhooks():
        if hook.get("name") == name:
            registry.update_webhook(hook["webhook_id"], wanted)
            return Registration(hook["webhook_id"], created=False, url=url)
    created = registry.create_webhook(wanted)
    return Registration(created["webhook_id"], created=True, url=url)


def local_secret(secrets_dir: Path) -> str:
    """``MLOPS_WEBHOOK_SECRET`` if set, else a random secret kept (mode 0600) in the state
    folder, so the receiver and MLflow agree across restarts. Never printed or logged."""
    given = os.environ.get(names.ENV_WEBHOOK_SECRET)
    if given:
        return given
    file = secrets_dir / "webhook-secret"
    if not file.exists():
        file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(32))
    return file.read_text().strip()
