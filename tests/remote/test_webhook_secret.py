"""`mlops remote rotate-webhook-secret`: Secrets Manager and MLflow's webhook end up agreeing,
however often it runs."""

from __future__ import annotations

from mlops_control.remote import webhook_secret
from mlops_control.webhooks import WEBHOOK_NAME


def stored(remote) -> str:
    return remote.client("secretsmanager").get_secret_value(
        SecretId=remote.outputs.webhook_secret)["SecretString"]


def rotate(remote, **kwargs):
    return webhook_secret.rotate(secretsmanager=remote.client("secretsmanager"),
                                 registry=remote.registry,
                                 secret_arn=remote.outputs.webhook_secret,
                                 webhook_url=remote.outputs.webhook_url, **kwargs)


def test_rotation_puts_a_new_secret_in_both_places_and_reuses_the_webhook(remote):
    first = rotate(remote)
    [hook] = remote.mlflow.webhooks.values()
    assert first.created and hook["name"] == WEBHOOK_NAME
    assert hook["url"] == remote.outputs.webhook_url
    assert hook["secret"] == stored(remote) != "old-secret"

    second = rotate(remote)

    assert not second.created and second.webhook_id == first.webhook_id
    assert len(remote.mlflow.webhooks) == 1
    assert remote.mlflow.webhooks[first.webhook_id]["secret"] == stored(remote)
    assert second.secret_version != first.secret_version


def test_sync_only_points_mlflow_at_the_stored_secret_without_changing_it(remote):
    result = rotate(remote, sync_only=True)
    assert not result.rotated and stored(remote) == "old-secret"
    assert remote.mlflow.webhooks[result.webhook_id]["secret"] == "old-secret"
