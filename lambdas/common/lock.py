"""One lock per endpoint, in DynamoDB: at most one deploy or retire execution works on an
endpoint at a time, whichever way it was started (webhook deliveries, reconciler ticks).

The deploy and retire state machines acquire it as their first step (``acquire``) and release
it on every path they end by (a conditional ``DeleteItem`` Task). An execution that ends where
its own states cannot run (stopped, timed out, ``States.DataLimitExceeded``/``States.Runtime``,
which no Catch sees) is released by the execution-ended handler (``release``). A lock expires
after the state machine's longest run plus a margin, so even a lost release cannot hold an
endpoint forever.

Items: ``pk`` (the endpoint name), ``owner`` (the execution ARN), ``expires_at`` (epoch
seconds, also the table's TTL attribute), ``kind`` (``deploy``/``retire``) and ``request``
(the execution input, JSON) so the handler can record a failure the machine could not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

DEPLOY_HOLD_S = 3 * 3600 + 15 * 60
"""The deploy state machine's timeout (3 h) plus a margin."""
RETIRE_HOLD_S = 3600 + 15 * 60
HOLD_S = {"deploy": DEPLOY_HOLD_S, "retire": RETIRE_HOLD_S}


@dataclass(frozen=True)
class Held:
    """What a released lock said: who held it, for what."""

    key: str
    owner: str
    kind: str
    request: dict[str, Any]


def acquire(dynamodb: Any, table: str, key: str, owner: str, kind: str,
            request: dict[str, Any], now: float) -> bool:
    """Take the lock on ``key`` for ``owner``; False when another live owner holds it.
    Idempotent: a retried step of the same execution gets its lock again."""
    try:
        dynamodb.put_item(
            TableName=table,
            Item={"pk": {"S": key}, "owner": {"S": owner}, "kind": {"S": kind},
                  "expires_at": {"N": str(int(now) + HOLD_S[kind])},
                  "request": {"S": json.dumps(request, sort_keys=True)}},
            ConditionExpression="attribute_not_exists(pk) OR expires_at < :now OR #o = :me",
            ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues={":now": {"N": str(int(now))}, ":me": {"S": owner}})
    except dynamodb.exceptions.ConditionalCheckFailedException:
        return False
    return True


def release(dynamodb: Any, table: str, key: str, owner: str) -> Held | None:
    """Release ``owner``'s lock on ``key``; None when ``owner`` did not hold it (released
    already, never acquired, or expired and taken by another execution)."""
    try:
        old = dynamodb.delete_item(
            TableName=table, Key={"pk": {"S": key}}, ConditionExpression="#o = :me",
            ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues={":me": {"S": owner}}, ReturnValues="ALL_OLD")
    except dynamodb.exceptions.ConditionalCheckFailedException:
        return None
    item = old.get("Attributes") or {}
    return Held(key=key, owner=owner, kind=item.get("kind", {}).get("S", ""),
                request=json.loads(item.get("request", {}).get("S") or "{}"))
