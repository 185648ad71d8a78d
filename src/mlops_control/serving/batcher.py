"""Adaptive micro-batching: requests that arrive together are predicted in one call.

A random forest spends most of a one-row predict on per-tree overhead (about 2.3 ms for 50
trees), and 32 rows cost barely more than one. So the first request to arrive schedules a
flush at the end of the current event-loop pass; every request parsed in that same pass (all
the sockets that were ready together) joins it. While a batch is predicted the loop is busy,
so the requests that arrive meanwhile form the next batch. The window therefore adapts by
itself: nothing waits when the server is idle (no timer, a lone request is predicted at
once) and batches grow with the load, bounded by the time of one predict call.

Per batch: one conversion of all rows (the type check), one DataFrame if the model needs
one, one predict call, and one observer call. A request whose values are bad is answered
400 alone; if the model raises on a batch, each request is retried alone so only the
failing ones get the error.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from mlops_control.errors import SchemaError
from mlops_control.serving import protocol
from mlops_control.serving.observer import NoOpObserver, Observer
from mlops_control.serving.served import ServedModel

logger = logging.getLogger("mlops_control.serving.batcher")

Reply = Callable[[int, bytes], None]


@dataclass(slots=True)
class Pending:
    served: ServedModel
    parsed: protocol.Parsed
    reply: Reply
    received: float


class MicroBatcher:
    def __init__(self, observer: Observer | None = None, max_rows: int = 1024) -> None:
        self.observer = observer if observer is not None else NoOpObserver()
        self._observe = not isinstance(self.observer, NoOpObserver)
        self.max_rows = max_rows
        self._pending: list[Pending] = []
        self._scheduled = False
        self.batches = 0
        self.requests = 0

    def submit(self, item: Pending) -> None:
        self._pending.append(item)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    @property
    def idle(self) -> bool:
        return not self._pending

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = self._pending, []
        for group in _groups(pending, self.max_rows):
            self._predict(group)

    def _predict(self, group: list[Pending]) -> None:
        served = group[0].served
        plan = served.plan
        inputs = self._convert(group)
        if not inputs:
            return
        items = [item for item, _ in inputs]
        data = plan.concat([part for _, part in inputs])
        model_input = plan.to_model(data)
        error = False
        outputs = None
        try:
            outputs = served.model.predict(model_input)
            if len(outputs) != sum(item.parsed.n_rows for item in items):
                raise ValueError(f"the model returned {len(outputs)} predictions for "
                                 f"{len(model_input)} rows")
        except Exception as exc:
            error = True
            if len(items) == 1:
                _model_failed(items[0], exc)
            else:
                # Find out which requests the model cannot take; answer the others.
                for item, part in inputs:
                    self._predict_alone(item, plan.to_model(part))
        else:
            offset = 0
            for item in items:
                end = offset + item.parsed.n_rows
                item.reply(200, protocol.predictions_body(outputs[offset:end]))
                offset = end
        self.batches += 1
        self.requests += len(items)
        if self._observe:
            oldest = min(item.received for item in items)
            self.observer.on_batch(len(model_input), time.perf_counter() - oldest, error,
                                   None if error else model_input, outputs)

    def _convert(self, group: list[Pending]) -> list[tuple[Pending, Any]]:
        """Each request's input as the model takes it; bad requests are answered here."""
        plan = group[0].served.plan
        raw = [item for item in group if item.parsed.rows is not None]
        if len(raw) == len(group) and len(group) > 1:
            # The usual case: one conversion for the rows of every request together.
            rows: list[Any] = []
            for item in group:
                rows.extend(item.parsed.rows)  # type: ignore[arg-type]
            try:
                data = plan.from_rows(rows)
            except SchemaError:
                pass  # some request is bad: convert one by one below to find it
            else:
                parts = []
                offset = 0
                for item in group:
                    parts.append((item, _part(data, offset, offset + item.parsed.n_rows)))
                    offset += item.parsed.n_rows
                return parts
        converted = []
        for item in group:
            if item.parsed.rows is None:
                converted.append((item, item.parsed.data))
                continue
            try:
                converted.append((item, plan.from_rows(item.parsed.rows)))
            except SchemaError as exc:
                item.reply(400, protocol.error_body(protocol.INVALID_INPUT, str(exc)))
        return converted

    def _predict_alone(self, item: Pending, model_input: Any) -> None:
        try:
            outputs = item.served.model.predict(model_input)
        except Exception as exc:
            _model_failed(item, exc)
        else:
            item.reply(200, protocol.predictions_body(outputs))


def _part(data: Any, start: int, end: int) -> Any:
    """Rows ``start:end`` of converted input: a matrix, or (columns plans) a dict of arrays."""
    if isinstance(data, dict):
        return {name: values[start:end] for name, values in data.items()}
    return data[start:end]


SERVER_TROUBLE = (MemoryError, OSError)
"""What a model raises for the server's trouble, not the request's: memory, files, network."""
MLFLOW_INPUT_CODES = frozenset({"INVALID_PARAMETER_VALUE", "BAD_REQUEST"})
_VALUE_CHECK = re.compile(r"^(Input (X )?contains (NaN|infinity)|Found unknown categories )")


def blames_the_input(item: Pending, exc: Exception) -> bool:
    """Whether a model's exception is the request's fault (400) rather than the model's (500).

    Only for models whose input nothing here could check (no signature, or one only MLflow
    checks, such as an integer or 3-D tensor): their predict is the schema check, and what
    it raises on bad input depends on the library (ValueError for scikit-learn, LightGBMError,
    XGBoostError, an AttributeError from a custom model's code), so any exception is the
    request's fault, as MLflow's server answers, except running out of memory or an OSError
    (the server's trouble) and an MlflowException coded other than INVALID_PARAMETER_VALUE/
    BAD_REQUEST (MLflow's server answers those with their code's status). Input
    checked against a column or float-matrix signature reached the model well formed: an
    exception then is a model bug, a 500 that the endpoint's 5xx alarm sees (MLflow's server
    answers 400 for both, which would hide a broken model from the rollback alarms)."""
    if isinstance(exc, ValueError) and _VALUE_CHECK.search(str(exc)):
        # scikit-learn's own checks of the values (NaN, inf, beyond float32; a category an
        # encoder was not fitted on): a signature's type admits them, the estimator cannot
        # take them, and the request can change that. Counted as 5xx, clients sending a new
        # city would roll a healthy model back.
        return True
    if item.served.plan.mode != "frame":
        return False
    code = getattr(exc, "error_code", None)
    if code is not None and type(exc).__name__ == "MlflowException":
        return str(code) in MLFLOW_INPUT_CODES
    return not isinstance(exc, SERVER_TROUBLE)


def _model_failed(item: Pending, exc: Exception) -> None:
    if blames_the_input(item, exc):
        item.reply(400, protocol.error_body(
            protocol.INVALID_INPUT,
            f"the model cannot take this input: {type(exc).__name__}: {exc}"))
        return
    logger.warning("model failed on a request", extra={
        "model": item.served.label, "rows": item.parsed.n_rows, "error": repr(exc)[:300]})
    item.reply(500, protocol.error_body(
        protocol.MODEL_ERROR, f"the model failed on this input: {type(exc).__name__}: {exc}"))


def _groups(pending: list[Pending], max_rows: int) -> Iterator[list[Pending]]:
    """Consecutive requests for the same model, up to ``max_rows`` rows (a request is never
    split). Requests parsed for a model that has since been swapped out form their own
    group and are answered by that model: no request straddles a swap. Frame-plan requests
    (no signature) are predicted one by one, as MLflow would."""
    group: list[Pending] = []
    rows = 0
    for item in pending:
        if group and (item.served is not group[0].served or rows + item.parsed.n_rows > max_rows
                      or item.served.plan.mode == "frame"):
            yield group
            group, rows = [], 0
        group.append(item)
        rows += item.parsed.n_rows
    if group:
        yield group
