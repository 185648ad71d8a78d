"""Routes of the scoring server: SageMaker's ``/ping`` and ``/invocations``, and MLflow's
``/health`` and ``/version``."""

from __future__ import annotations

import logging
import time

from mlops_control.serving import protocol
from mlops_control.serving.batcher import MicroBatcher, Pending
from mlops_control.serving.http import Connection, Request
from mlops_control.serving.served import ServedModel

logger = logging.getLogger("mlops_control.serving.app")


class ModelSlot:
    """The live model, and models loaded beside it while a swap is being prepared."""

    def __init__(self, live: ServedModel) -> None:
        self.live = live
        self.staged: dict[int, ServedModel] = {}


class ScoringApp:
    def __init__(self, slot: ModelSlot, batcher: MicroBatcher, *,
                 headerless_csv: bool = False) -> None:
        self.slot = slot
        self.headerless_csv = headerless_csv
        self.batcher = batcher
        # The monitoring observer's per-answer count (serving/observer.py), if it has one.
        self.answered = getattr(batcher.observer, "on_response", None)

    def __call__(self, conn: Connection, request: Request) -> None:
        path, method = request.path, request.method
        if path == b"/invocations":
            if method != b"POST":
                self._error(conn, request, 405, protocol.METHOD_NOT_ALLOWED,
                            "use POST for /invocations")
            else:
                self._invoke(conn, request)
        elif path in (b"/ping", b"/health", b"/version"):
            if method != b"GET":
                self._error(conn, request, 405, protocol.METHOD_NOT_ALLOWED,
                            f"use GET for {path.decode()}")
            elif path == b"/version":
                conn.respond(request, 200, self.slot.live.version_body)
            else:
                # A worker only accepts connections once its model is loaded, so answering
                # at all means healthy.
                conn.respond(request, 200, b"\n")
        else:
            self._error(conn, request, 404, protocol.NOT_FOUND,
                        f"no route {path.decode('latin-1')!r}: use POST /invocations, "
                        "GET /ping, GET /health or GET /version")

    def _invoke(self, conn: Connection, request: Request) -> None:
        if request.too_large:
            conn.closing = True
            self._error(conn, request, 413, protocol.TOO_LARGE,
                        f"the body is larger than the limit of {conn.limits.max_body_bytes} "
                        "bytes (MLOPS_SERVING_MAX_BODY_BYTES)")
            self._count(request, 413)
            return
        served = self.slot.live
        try:
            parsed = protocol.parse(request.body, request.content_type, served.plan,
                                    headerless_csv=self.headerless_csv)
        except protocol.RequestError as exc:
            conn.respond(request, exc.status, exc.body())
            self._count(request, exc.status)
            return

        def reply(status: int, body: bytes) -> None:
            conn.respond(request, status, body)
            self._count(request, status)

        self.batcher.submit(Pending(served, parsed, reply, request.received))

    def _count(self, request: Request, status: int) -> None:
        if self.answered is not None:
            self.answered(status, time.perf_counter() - request.received)

    @staticmethod
    def _error(conn: Connection, request: Request, status: int, code: str,
               message: str) -> None:
        conn.respond(request, status, protocol.error_body(code, message))
