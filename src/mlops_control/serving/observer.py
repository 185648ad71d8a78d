"""The monitoring hook of the scoring server: told about every predicted batch.

The server calls :meth:`Observer.on_batch` once per batch, from a background thread after the
answers have been sent, so a slow observer never delays a response. An observer may also have
``on_response(status, latency_s)``, called in place for every answer to ``/invocations``
(so it must only count), and ``close()``, called when the worker stops. The default does
nothing and costs nothing. Choose another with ``MLOPS_SERVING_OBSERVER=package.module:name``,
where ``name`` is an Observer, or a callable returning one, created once per worker process.
"""

from __future__ import annotations

import importlib
import logging
import queue
import threading
from typing import Any, Protocol

logger = logging.getLogger("mlops_control.serving.observer")


class Observer(Protocol):
    def on_batch(self, n_rows: int, latency_s: float, error: bool, inputs: Any,
                 outputs: Any) -> None:
        """``n_rows`` rows were predicted in one call. ``latency_s`` runs from the arrival of
        the batch's oldest request to its answers being sent. ``inputs`` is what the model was
        given (a matrix or DataFrame) and ``outputs`` its predictions; both are None for a
        batch that failed (``error``). Do not modify them."""


class NoOpObserver:
    def on_batch(self, n_rows: int, latency_s: float, error: bool, inputs: Any,
                 outputs: Any) -> None:
        return None


def load(spec: str | None) -> Observer:
    """The observer named by ``module:name`` (see the module docstring), or the no-op one."""
    if not spec:
        return NoOpObserver()
    module_name, _, attribute = spec.partition(":")
    target = getattr(importlib.import_module(module_name), attribute or "observer")
    make = isinstance(target, type) or (callable(target) and not hasattr(target, "on_batch"))
    observer = target() if make else target
    if not hasattr(observer, "on_batch"):
        raise TypeError(f"MLOPS_SERVING_OBSERVER={spec!r} has no on_batch method")
    return observer


class BackgroundObserver:
    """Runs another observer's calls on one daemon thread, in order, off the serving path."""

    MAX_QUEUED = 1000

    def __init__(self, inner: Observer) -> None:
        self.inner = inner
        # Counting an answer is cheap by contract: it runs in place, not through the queue.
        on_response = getattr(inner, "on_response", None)
        if on_response is not None:
            self.on_response = on_response
        self._queue: queue.Queue[tuple[Any, ...] | None] = queue.Queue(self.MAX_QUEUED)
        self._thread = threading.Thread(target=self._work, name="observer", daemon=True)
        self._thread.start()

    def on_batch(self, n_rows: int, latency_s: float, error: bool, inputs: Any,
                 outputs: Any) -> None:
        try:
            self._queue.put_nowait((n_rows, latency_s, error, inputs, outputs))
        except queue.Full:
            # Serving comes first: a stuck observer loses batches rather than slowing answers.
            logger.warning("observer queue full; batch not observed", extra={"rows": n_rows})

    def close(self, timeout: float = 5.0) -> None:
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return
        self._thread.join(timeout)
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            try:
                self.inner.on_batch(*item)
            except Exception:
                logger.exception("observer failed")
