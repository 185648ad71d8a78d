"""SageMaker data-capture records as an endpoint writes them (one JSON object per line)."""

from __future__ import annotations

import base64
import json
from typing import Any

KEY = ("capture/test-project-production/test-project-production/AllTraffic/2026/11/26/12/"
       "12-00-00-000-6b1d2c3e.jsonl")


def record(body: str, output: str, when: str = "2026-11-26T12:00:01Z",
           content_type: str = "application/json", encoding: str = "JSON") -> str:
    data = base64.b64encode(body.encode()).decode() if encoding == "BASE64" else body
    return json.dumps({
        "captureData": {
            "endpointInput": {"observedContentType": content_type, "mode": "INPUT",
                              "data": data, "encoding": encoding},
            "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                               "data": output, "encoding": "JSON"}},
        "eventMetadata": {"eventId": "3a7f1e2c-0000-4000-8000-000000000000",
                          "inferenceTime": when},
        "eventVersion": "0"})


def split_request(columns: list[str], rows: list[list[Any]]) -> str:
    return json.dumps({"dataframe_split": {"columns": columns, "data": rows}})


def predictions(values: list[Any]) -> str:
    return json.dumps({"predictions": values})
