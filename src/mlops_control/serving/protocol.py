"""MLflow's scoring protocol: request bodies in, ``{"predictions": [...]}`` out.

JSON bodies hold exactly one of ``dataframe_split``, ``dataframe_records``, ``instances`` or
``inputs``; ``text/csv`` bodies need a header row. Parsing only reshapes the request into rows
in the model's column order (or converts it, for CSV and column-wise JSON); the conversion of
row values to numbers happens once per batch, for all requests of the batch together.

Every problem with a request is a :class:`RequestError` carrying the HTTP status and a message
naming the column, the row or the problem: bad input is never a 500.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import orjson

from mlops_control import csv_input
from mlops_control.errors import SchemaError
from mlops_control.schema import InputPlan, missing_columns, shown

FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
JSON = "application/json"
CSV = "text/csv"

# Error codes: MLflow's where it has one, so clients of `mlflow models serve` read them alike.
BAD_REQUEST = "BAD_REQUEST"
INVALID_INPUT = "INVALID_PARAMETER_VALUE"
UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
TOO_LARGE = "REQUEST_TOO_LARGE"
MODEL_ERROR = "MODEL_ERROR"
NOT_FOUND = "ENDPOINT_NOT_FOUND"
METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"


class RequestError(Exception):
    def __init__(self, status: int, error_code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message

    def body(self) -> bytes:
        return error_body(self.error_code, self.message)


@dataclass(slots=True)
class Parsed:
    n_rows: int
    rows: Sequence[Sequence[Any]] | None = None
    """Values in the model's column order, not yet converted (the batch converts them)."""
    data: Any = None
    """Input already converted (CSV, column-wise JSON), or a DataFrame for frame plans."""


def parse(body: bytes, content_type: str | None, plan: InputPlan, *,
          headerless_csv: bool = False) -> Parsed:
    mime = _mime(content_type)
    try:
        if mime == JSON:
            return _parse_json(body, plan)
        if mime == CSV:
            return _parse_csv(body, plan, headerless_csv)
    except SchemaError as exc:
        raise RequestError(400, INVALID_INPUT, str(exc)) from None
    raise RequestError(415, UNSUPPORTED_MEDIA_TYPE,
                       f"Content-Type {content_type!r} is not supported: send {JSON} "
                       f"(one of {', '.join(FORMATS)}) or {CSV} with a header row")


def _mime(content_type: str | None) -> str:
    if not content_type:
        return JSON  # what MLflow's own clients mean when they forget to say
    mime, _, params = content_type.partition(";")
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "charset" and \
                value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            raise RequestError(415, UNSUPPORTED_MEDIA_TYPE,
                               f"charset {value.strip()!r} is not supported: send UTF-8")
    return mime.strip().lower()


# --- JSON ----------------------------------------------------------------------------------
def _parse_json(body: bytes, plan: InputPlan) -> Parsed:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            # NaN and Infinity are not JSON, but Python clients send them and MLflow takes them.
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise RequestError(400, BAD_REQUEST, f"the body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise RequestError(400, BAD_REQUEST, "the body must be a JSON object with exactly one of "
                           f"the keys {', '.join(FORMATS)}; got {type(document).__name__}")
    keys = [k for k in FORMATS if k in document]
    if len(keys) != 1:
        got = ", ".join(map(repr, document)) or "none"
        raise RequestError(400, BAD_REQUEST, f"the body must have exactly one of the keys "
                           f"{', '.join(FORMATS)}; got keys {got}")
    kind, payload = keys[0], document[keys[0]]
    if plan.mode == "frame":
        return _frame(kind, payload)
    if kind == "dataframe_split":
        return _split(payload, plan)
    if kind == "dataframe_records":
        return _records(payload, plan, kind)
    return _instances_or_inputs(payload, plan, kind)


def _split(payload: Any, plan: InputPlan) -> Parsed:
    if not isinstance(payload, dict) or "data" not in payload \
            or set(payload) - {"columns", "data", "index"}:
        raise SchemaError("dataframe_split must be an object with 'data' and 'columns' (and "
                          "optionally 'index')")
    data, columns = payload["data"], payload.get("columns")
    if not isinstance(data, list):
        raise SchemaError("dataframe_split 'data' must be a list of rows")
    if columns is None:
        if not plan.positional:
            raise SchemaError("dataframe_split needs 'columns' naming the values of each row")
        return Parsed(len(data), rows=data)
    if not isinstance(columns, list):
        raise SchemaError("dataframe_split 'columns' must be a list of column names")
    if not plan.positional and len(plan.required) != len(plan.names):
        # Optional columns may be left out: go column by column, as MLflow does.
        _pick(data, tuple(range(len(columns))), len(columns))  # rows must be well formed
        wanted = {name: i for i, name in enumerate(columns) if name in plan.names}
        converted = plan.from_columns({n: [row[i] for row in data] for n, i in wanted.items()})
        return Parsed(InputPlan.n_rows(converted), data=converted)
    layout = plan.layout(columns)
    if layout is None:
        return Parsed(len(data), rows=data)
    return Parsed(len(data), rows=_pick(data, layout, len(columns)))


def _pick(rows: list[Any], layout: tuple[int, ...], width: int) -> list[Any]:
    """The model's values out of each sent row (extra columns are ignored, as MLflow does)."""
    for i, row in enumerate(rows, 1):
        if not isinstance(row, list):
            raise SchemaError(f"row {i} is {shown(row)}, not a list of values")
        if len(row) != width:
            raise SchemaError(f"row {i} has {len(row)} values but 'columns' names {width}")
    if not layout:  # itemgetter() refuses no arguments; the caller says what is missing
        return [() for _ in rows]
    if len(layout) == 1:
        return [(row[layout[0]],) for row in rows]
    return list(map(itemgetter(*layout), rows))


def _records(payload: Any, plan: InputPlan, kind: str) -> Parsed:
    if not isinstance(payload, list):
        raise SchemaError(f"{kind} must be a list of objects, one per row")
    if plan.positional:
        raise SchemaError(f"this model takes {plan.width} values per row by position, not "
                          "named columns: send rows as lists (instances, inputs or "
                          "dataframe_split)")
    names = plan.names
    required = plan.required
    try:
        if len(required) == len(names):
            getter = itemgetter(*names)
            rows = list(map(getter, payload)) if len(names) > 1 else [
                (getter(r),) for r in payload]
            return Parsed(len(rows), rows=rows)
        if required:
            getter = itemgetter(*required)
            for record in payload:
                getter(record)
        # Optional columns absent from every row are left out, as MLflow leaves them out.
        present = [n for n in names if n in required or any(n in r for r in payload)]
        columns = {n: [r.get(n) for r in payload] for n in present}
    except (KeyError, TypeError, AttributeError):
        raise _bad_record(payload, required or names) from None
    data = plan.from_columns(columns)
    return Parsed(InputPlan.n_rows(data), data=data)


def _bad_record(records: list[Any], required: Sequence[str]) -> SchemaError:
    for i, record in enumerate(records, 1):
        if not isinstance(record, dict):
            return SchemaError(f"row {i} is {shown(record)}, not an object of column values")
        missing = [n for n in required if n not in record]
        if missing:
            error = missing_columns(missing, required)
            return SchemaError(f"row {i}: {error}")
    return SchemaError("the rows do not match the model's columns")


def _instances_or_inputs(payload: Any, plan: InputPlan, kind: str) -> Parsed:
    if isinstance(payload, dict):
        if plan.positional:
            raise SchemaError(f"this model takes {plan.width} values per row by position: "
                              f"send {kind} as a list of rows")
        data = plan.from_columns(payload)
        return Parsed(InputPlan.n_rows(data), data=data)
    if not isinstance(payload, list):
        raise SchemaError(f"{kind} must be a list of rows or an object of columns")
    if payload and isinstance(payload[0], dict):
        return _records(payload, plan, kind)
    if plan.positional:
        return Parsed(len(payload), rows=payload)
    if len(plan.names) == 1 and payload and not isinstance(payload[0], list):
        data = plan.from_columns({plan.names[0]: payload})
        return Parsed(InputPlan.n_rows(data), data=data)
    raise SchemaError(f"{kind} holds rows without column names, but the model takes named "
                      f"columns: send a list of objects ({{column: value}}), an object of "
                      f"columns, or dataframe_split")


def _frame(kind: str, payload: Any) -> Parsed:
    """No signature to check against: build the DataFrame MLflow would, and let the model
    (a pyfunc model enforces its own signature) judge it."""
    import pandas as pd

    try:
        if kind == "dataframe_split":
            frame = pd.DataFrame(data=payload["data"], columns=payload.get("columns"))
        elif isinstance(payload, dict) and all(not isinstance(v, list) for v in payload.values()):
            frame = pd.DataFrame([payload])
        elif kind != "dataframe_records" and isinstance(payload, list) and payload \
                and not isinstance(payload[0], dict):
            return Parsed(len(payload), data=np.asarray(payload))
        else:
            frame = pd.DataFrame(payload)
    except Exception as exc:  # pandas raises its own types for odd JSON
        # The input is decoded JSON and nothing else runs here, so whatever pandas raises
        # (InvalidIndexError for object column names, IndexError, ...) is the request's fault.
        detail = str(exc) or type(exc).__name__
        raise SchemaError(f"{kind} is not a valid table: {detail}") from None
    if frame.empty and not len(frame):
        raise SchemaError("the input has no rows")
    return Parsed(len(frame), data=frame)


# --- CSV -----------------------------------------------------------------------------------
def _parse_csv(body: bytes, plan: InputPlan, headerless: bool = False) -> Parsed:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    if not body.strip():
        raise SchemaError("the CSV body is empty: it needs a header row and data rows")
    header = csv_input.header_of(body.split(b"\n", 1)[0])
    if headerless and plan.mode != "frame" and not _names_columns(header, plan):
        # A mini-batch cut from the middle of a file: its rows follow the signature's order.
        names = [s.name or f"#{i}" for i, s in enumerate(plan.specs)]
        read, convert = csv_input.options(plan, names, model_columns_only=True,
                                          headerless=True)
        try:
            table = pacsv.read_csv(io.BytesIO(body), read_options=read,
                                   convert_options=convert)
        except (pa.ArrowInvalid, pa.ArrowKeyError) as exc:
            raise csv_input.as_schema_error(exc, plan, names, row_offset=0) from None
        return Parsed(table.num_rows, data=plan.from_arrow(table))
    if plan.mode == "frame":
        import pandas as pd

        try:
            frame = pd.read_csv(io.BytesIO(body))
        except (ValueError, UnicodeDecodeError) as exc:  # pandas' ParserError is a ValueError
            raise SchemaError(f"the CSV could not be read: {exc}") from None
        return Parsed(len(frame), data=frame)
    read, convert = csv_input.options(plan, header, model_columns_only=True)
    try:
        table = pacsv.read_csv(io.BytesIO(body), read_options=read, convert_options=convert)
    except (pa.ArrowInvalid, pa.ArrowKeyError) as exc:
        raise csv_input.as_schema_error(exc, plan, header, row_offset=-1) from None
    data = plan.from_arrow(table)
    return Parsed(table.num_rows, data=data)


def _names_columns(first_line: Sequence[str], plan: InputPlan) -> bool:
    """Whether a CSV's first line is a header: it names a model column (by name), or holds
    a value that is not a number (a model taking numbers by position)."""
    if not plan.positional:
        return any(name in plan.names for name in first_line)
    for value in first_line:
        try:
            float(value)
        except ValueError:
            return True
    return False


# --- responses -----------------------------------------------------------------------------
def predictions_body(predictions: Any) -> bytes:
    """``{"predictions": [...]}`` as MLflow writes it for the same values."""
    if isinstance(predictions, np.ndarray) and predictions.dtype.kind in "biuf":
        if predictions.dtype == np.float32:
            # MLflow goes through tolist(): float32 values come out as their float64 digits.
            predictions = predictions.astype(np.float64)
        array = np.ascontiguousarray(predictions)
        return b'{"predictions":' + orjson.dumps(array, option=orjson.OPT_SERIALIZE_NUMPY) + b"}"
    if hasattr(predictions, "to_dict"):  # a DataFrame from a pyfunc model: records, as MLflow
        predictions = predictions.to_dict(orient="records")
    elif hasattr(predictions, "tolist"):
        predictions = predictions.tolist()
    return orjson.dumps({"predictions": predictions},
                        option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)


def error_body(error_code: str, message: str) -> bytes:
    return orjson.dumps({"error_code": error_code, "message": message})
