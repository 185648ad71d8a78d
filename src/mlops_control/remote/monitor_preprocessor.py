"""Model Monitor's record preprocessor for the control centre's endpoints (uploaded to S3 by
``mlops remote monitoring-job``; it runs inside SageMaker's analyzer container, so standard
library only).

Data capture stores each request as the endpoint received it: MLflow's scoring JSON
(``{"dataframe_split": {"columns": [...], "data": [[...]]}}``, or ``dataframe_records`` /
``instances``). Model Monitor analyses flat records, so each captured request becomes
``{column: value}``: a dict for a one-row request, a list of dicts for a multi-row one (AWS
documents the dict form; the list form is what only a real account can confirm).
"""

from __future__ import annotations

import base64
import json
from typing import Any


def _text(capture: Any) -> str:
    data = capture.data
    if str(getattr(capture, "encoding", "")).upper() == "BASE64":
        return base64.b64decode(data).decode()
    return str(data)


def rows(request: Any) -> list[dict[str, Any]]:
    """The rows of one scoring request as ``{column: value}``."""
    if isinstance(request, dict) and "dataframe_split" in request:
        split = request["dataframe_split"]
        columns = [str(c) for c in split.get("columns") or []]
        return [dict(zip(columns, row, strict=False)) for row in split.get("data") or []]
    if isinstance(request, dict) and "dataframe_records" in request:
        return [dict(r) for r in request["dataframe_records"]]
    if isinstance(request, dict) and "instances" in request:
        found = request["instances"]
        return [r if isinstance(r, dict) else {f"feature_{i}": v for i, v in enumerate(r)}
                for r in found]
    raise ValueError("not an MLflow scoring request (dataframe_split, dataframe_records "
                     "or instances)")


def preprocess_handler(inference_record: Any) -> dict[str, Any] | list[dict[str, Any]]:
    records = rows(json.loads(_text(inference_record.endpoint_input)))
    return records[0] if len(records) == 1 else records
