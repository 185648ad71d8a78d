"""``mlops remote rotate-webhook-secret``: a new HMAC secret for MLflow's webhook deliveries.

The secret lives in two places that must agree: Secrets Manager (the webhook Lambda reads it,
caching it for five minutes) and MLflow's webhook (which signs with it). A rotation Lambda
could not change both at once, so this command does, in the order that loses least:
1. put the new value in Secrets Manager (new ``AWSCURRENT`` version);
2. update the control centre's webhook in MLflow (found by name, created if missing).
Deliveries in the few minutes between (and those reaching a warm Lambda that still holds the
old value) are refused with 401; the scheduled reconciler converges everything within
``reconcile_minutes`` anyway. Re-running is safe: each run leaves both places agreeing.
``--sync-only`` skips step 1 and points MLflow at the stored secret (after restoring MLflow).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from mlops_control import webhooks
from mlops_control.registry import RegistryClient


@dataclass(frozen=True)
class Rotation:
    webhook_id: str
    created: bool
    rotated: bool
    secret_version: str | None


def rotate(*, secretsmanager: Any, registry: RegistryClient, secret_arn: str,
           webhook_url: str, sync_only: bool = False) -> Rotation:
    version: str | None = None
    if sync_only:
        value = secretsmanager.get_secret_value(SecretId=secret_arn)["SecretString"]
    else:
        value = secrets.token_urlsafe(32)
        version = secretsmanager.put_secret_value(SecretId=secret_arn,
                                                  SecretString=value)["VersionId"]
    registration = webhooks.ensure(registry, webhook_url, value)
    return Rotation(webhook_id=registration.webhook_id, created=registration.created,
                    rotated=not sync_only, secret_version=version)
