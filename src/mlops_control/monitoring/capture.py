"""SageMaker data-capture files, read back into rows and predictions.

An endpoint with data capture on writes JSON Lines files to
``<destination>/<endpoint>/<variant>/yyyy/mm/dd/hh/<name>.jsonl``, one record per request::

    {"captureData": {
        "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                          "data": "...", "encoding": "JSON" | "CSV" | "BASE64"},
        "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                           "data": "...", "encoding": "JSON"}},
     "eventMetadata": {"eventId": "...", "inferenceTime": "2024-05-01T12:00:01Z"},
     "eventVersion": "0"}

The request bodies are MLflow scoring requests (``dataframe_split``, ``dataframe_records``,
``instances``, ``inputs``, or CSV with a header row), the responses ``{"predictions": [...]}``.
A record that cannot be read is counted and skipped: one odd request must not hide the
statistics of all the others. Standard library only (the Lambda bundle).
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


class CaptureError(ValueError):
    pass


@dataclass
class CapturedMinute:
    """Every row captured in one minute: feature values by name, and the predictions."""

    minute: datetime
    rows: list[dict[str, Any]] = field(default_factory=list)
    predictions: list[Any] = field(default_factory=list)


@dataclass
class CaptureFile:
    minutes: list[CapturedMinute]
    records: int
    skipped: int
    reasons: list[str]


def endpoint_of(key: str) -> tuple[str, str]:
    """``(endpoint, variant)`` from a capture object's key (the segments SageMaker adds)."""
    parts = key.split("/")
    if len(parts) < 7 or not parts[-1].endswith(".jsonl"):
        raise CaptureError(f"{key} is not a data-capture file "
                           "(<endpoint>/<variant>/yyyy/mm/dd/hh/<name>.jsonl)")
    return parts[-7], parts[-6]


def _text(side: dict[str, Any]) -> tuple[str, str]:
    content_type = str(side.get("observedContentType") or "").split(";")[0].strip().lower()
    data = side.get("data")
    if not isinstance(data, str):
        raise CaptureError("no data")
    if str(side.get("encoding", "")).upper() == "BASE64":
        data = base64.b64decode(data).decode("utf-8")
    return content_type, data


def _rows_from_json(body: Any, feature_order: Sequence[str]) -> list[dict[str, Any]]:
    if not isinstance(body, dict):
        raise CaptureError("the request is not a JSON object")
    if "dataframe_split" in body:
        split = body["dataframe_split"]
        columns = [str(c) for c in split.get("columns") or feature_order]
        return [dict(zip(columns, row, strict=False)) for row in split.get("data") or []]
    if "dataframe_records" in body:
        return [{str(k): v for k, v in row.items()} for row in body["dataframe_records"]]
    for key in ("instances", "inputs"):
        if key not in body:
            continue
        values = body[key]
        if isinstance(values, dict):  # column-wise: {"a": [1, 2], "b": [3, 4]}
            names = [str(k) for k in values]
            return [dict(zip(names, row, strict=True))
                    for row in zip(*values.values(), strict=True)]
        rows = []
        for row in values:
            if isinstance(row, dict):
                rows.append({str(k): v for k, v in row.items()})
            else:
                names = list(feature_order) or [str(i) for i in range(len(row))]
                rows.append(dict(zip(names, row, strict=False)))
        return rows
    raise CaptureError("the request is in none of the MLflow scoring formats")


def _rows_from_csv(text: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    return [{k: (v if v != "" else None) for k, v in row.items()} for row in reader]


def input_rows(side: dict[str, Any], feature_order: Sequence[str] = ()) -> list[dict[str, Any]]:
    content_type, data = _text(side)
    if content_type == "text/csv" or str(side.get("encoding", "")).upper() == "CSV":
        return _rows_from_csv(data)
    return _rows_from_json(json.loads(data), feature_order)


def predictions(side: dict[str, Any]) -> list[Any]:
    """The scalar predictions of a response; a row whose prediction is a list or a record
    (probabilities, several outputs) gives None: its distribution is not one number."""
    content_type, data = _text(side)
    if content_type == "text/csv" or str(side.get("encoding", "")).upper() == "CSV":
        values: list[Any] = [line.split(",")[0] for line in data.splitlines() if line.strip()]
    else:
        body = json.loads(data)
        values = body.get("predictions", []) if isinstance(body, dict) else body
    return [v if not isinstance(v, list | dict) else None for v in values]


def _minute(record: dict[str, Any]) -> datetime:
    raw = (record.get("eventMetadata") or {}).get("inferenceTime")
    if not raw:
        raise CaptureError("no inferenceTime")
    moment = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(second=0, microsecond=0)


def read(text: str, feature_order: Sequence[str] = ()) -> CaptureFile:
    """Group a capture file's rows and predictions by minute of inference time."""
    minutes: dict[datetime, CapturedMinute] = {}
    records = skipped = 0
    reasons: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        records += 1
        try:
            record = json.loads(line)
            data = record["captureData"]
            rows = input_rows(data["endpointInput"], feature_order)
            predicted = predictions(data["endpointOutput"]) if "endpointOutput" in data else []
            minute = _minute(record)
        except (CaptureError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
            skipped += 1
            if len(reasons) < 5:
                reasons.append(f"{type(exc).__name__}: {exc}"[:200])
            continue
        bucket = minutes.setdefault(minute, CapturedMinute(minute))
        bucket.rows.extend(rows)
        bucket.predictions.extend(predicted)
    return CaptureFile(sorted(minutes.values(), key=lambda m: m.minute), records, skipped,
                       reasons)
