"""The local control centre's HTTP entry point on 127.0.0.1: MLflow webhooks, status, health.

Small on purpose (the standard library's threaded server): a few requests a minute, each
answered fast; the work they start runs on the control centre's own threads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from mlops_control import events
from mlops_control.dedupe import SeenDeliveries
from mlops_control.errors import EventError

logger = logging.getLogger("mlops_control.receiver")

WEBHOOK_PATH = "/webhooks/mlflow"
MAX_BODY = events.MAX_WEBHOOK_BYTES
READ_TIMEOUT_S = 10.0


class Receiver:
    def __init__(self, host: str, port: int, secret: str, seen: SeenDeliveries,
                 on_event: Callable[[events.RegistryEvent], None],
                 status: Callable[[], dict[str, Any]],
                 pages: dict[str, Callable[[str], tuple[int, str, bytes]]] | None = None) -> None:
        self.secret = secret
        self.seen = seen
        self.on_event = on_event
        self.status = status
        self.pages = pages or {}
        self.counts = {"accepted": 0, "duplicate": 0, "ignored": 0, "rejected": 0}
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{WEBHOOK_PATH}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._server.serve_forever, name="receiver",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def handle_webhook(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, Any]]:
        """Verify, deduplicate, parse and hand over one delivery; the HTTP answer."""
        try:
            delivery_id = events.verify_webhook(headers, body, self.secret)
            event = events.parse_webhook(delivery_id, body)
        except EventError as exc:
            self.counts["rejected"] += 1
            logger.warning("webhook rejected", extra={"status": exc.status, "reason": exc.reason})
            return exc.status, {"error": exc.reason}
        if not self.seen.first_time(delivery_id):
            self.counts["duplicate"] += 1
            logger.info("duplicate delivery ignored", extra={"delivery_id": delivery_id})
            return 200, {"ignored": "duplicate delivery"}
        if not event.is_actionable:
            self.counts["ignored"] += 1
            return 200, {"ignored": f"{event.event} {event.key or ''}".strip()}
        self.counts["accepted"] += 1
        logger.info("webhook accepted", extra={"event": event.event, "model": event.model,
                                               "version": event.version, "key": event.key,
                                               "value": event.value})
        self.on_event(event)
        return 202, {"accepted": event.event, "model": event.model}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "mlops-control-centre"
            sys_version = ""
            # A client that announces a body and never sends it must not hold a thread forever.
            timeout = READ_TIMEOUT_S

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("http", extra={"request": format % args})

            def _send(self, status: int, payload: dict[str, Any] | bytes,
                      content_type: str = "application/json") -> None:
                body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                if status == 405:
                    self.send_header("Allow", "GET, POST")
                self.end_headers()
                with contextlib.suppress(ConnectionError):  # the client left: nobody to tell
                    self.wfile.write(body)

            def send_error(self, code: int, message: str | None = None,
                           explain: str | None = None) -> None:
                # The base class answers in HTML, and with 505 to an "HTTP/2.0" request line:
                # a malformed request is the client's fault, so it is a 4xx, in JSON.
                self.close_connection = True
                self._send(400 if code >= 500 else code,
                           {"error": message or HTTPStatus(code).phrase})

            def __getattr__(self, name: str) -> Any:
                # Any other method (PUT, HEAD, FOO...) is a 405, not the base class's 501.
                if name.startswith("do_"):
                    return lambda: self._send(405, {"error": "use GET, or POST for webhooks"})
                raise AttributeError(name)

            def do_POST(self) -> None:
                if self.path.split("?")[0] != WEBHOOK_PATH:
                    self._send(404, {"error": f"no such path; webhooks go to {WEBHOOK_PATH}"})
                    return
                length_header = self.headers.get("Content-Length")
                # isdigit() alone admits '²', which int() refuses.
                if length_header is None or not (length_header.isascii()
                                                 and length_header.isdigit()):
                    self._send(411, {"error": "Content-Length required"})
                    return
                length = int(length_header)
                if length > MAX_BODY:
                    # Refused before reading: an oversized body never reaches memory.
                    receiver.counts["rejected"] += 1
                    logger.warning("webhook rejected", extra={"status": 413, "bytes": length})
                    self.close_connection = True
                    self._send(413, {"error": f"body over {MAX_BODY} bytes"})
                    return
                try:
                    body = self.rfile.read(length)
                except (TimeoutError, ConnectionError):
                    self.close_connection = True
                    return
                if len(body) < length:  # the client closed before sending all of it
                    self.close_connection = True
                    return
                status, payload = receiver.handle_webhook(dict(self.headers.items()), body)
                self._send(status, payload)

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/healthz":
                    self._send(200, {"ok": True})
                elif path == "/status":
                    self._send(200, receiver.status())
                else:
                    for prefix, page in receiver.pages.items():
                        if path.startswith(prefix):
                            # The full path: a page may take a query string.
                            status, content_type, body = page(self.path)
                            self._send(status, body, content_type)
                            return
                    self._send(404, {"error": "no such page"})

        return Handler
