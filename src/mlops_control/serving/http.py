"""A small HTTP/1.1 server on asyncio and httptools: keep-alive, pipelining, size limits.

A request is handed to the application with the connection; the application answers through
:meth:`Connection.respond`, now or later (after its batch is predicted). Requests on one
connection are answered in order, one at a time, and no task or future is created per
request: at a few thousand requests a second per core, those costs would show.

Accepting is done here too, one connection per wake-up, because several worker processes
share the listening socket: asyncio's own accept loop takes up to a hundred connections at
once, which would leave one worker with every connection of a benchmark and the other idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus

import httptools

logger = logging.getLogger("mlops_control.serving.http")

MAX_PIPELINED = 32
"""Requests queued on one connection before it stops being read (back-pressure)."""
SHUTDOWN_GRACE_S = 2.0
"""How long a connection accepted during shutdown may take to send its request."""


@dataclass(slots=True)
class Request:
    method: bytes
    path: bytes
    content_type: str | None
    body: bytes
    keep_alive: bool
    too_large: bool
    received: float = field(default_factory=time.perf_counter)


Handler = Callable[["Connection", Request], None]


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int
    keepalive_s: float


class Connection(asyncio.Protocol):
    def __init__(self, handler: Handler, limits: Limits, registry: set[Connection]) -> None:
        self.handler = handler
        self.limits = limits
        self.registry = registry
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.queue: deque[Request] = deque()
        self.busy = False
        self.closing = False
        self.paused = False
        self.answered = 0
        self._timer: asyncio.TimerHandle | None = None
        self._in_message = False
        self._url = b""
        self._content_type: str | None = None
        self._content_length = 0
        self._expect_continue = False
        self._body: list[bytes] = []
        self._size = 0
        self._too_large = False
        self._eof = False

    # --- asyncio.Protocol -----------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # asyncio only sets TCP_NODELAY when the socket's proto field says TCP, which an
            # accepted socket from a shared listener does not (uvicorn issue 3149): without it,
            # each answer on a kept-alive connection waits for the client's delayed ACK.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.registry.add(self)
        self._arm_idle_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self.registry.discard(self)
        self.transport = None
        self.queue.clear()
        if self._timer is not None:
            self._timer.cancel()

    def data_received(self, data: bytes) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(400, b"protocol upgrades are not supported")
        except httptools.HttpParserError:
            self._fail(400, b"malformed HTTP request")
        if self._in_message and self._timer is None and self.transport is not None:
            # A request that stops arriving (a client that announced more body than it
            # sends, or a slow-loris) must not hold the connection forever.
            self._timer = asyncio.get_running_loop().call_later(self.limits.keepalive_s,
                                                                self._stalled)

    def eof_received(self) -> bool | None:
        # The client closed its sending side (curl --http1.0 -N, nc -N, a proxy that
        # half-closes). A request cut short gets an answer that says so instead of silence;
        # requests already read are still answered (returning True keeps the transport open
        # for writing), then the connection closes.
        if self._in_message:
            self._fail(400, b"the request ended before it was complete")
            return None
        if self.busy or self.queue:
            self._eof = True
            return True
        return None

    # --- httptools callbacks --------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._in_message = True
        self._url = b""
        self._content_type = None
        self._content_length = 0
        self._expect_continue = False
        self._body = []
        self._size = 0
        self._too_large = False

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-type":
            self._content_type = value.decode("latin-1")
        elif name == b"content-length":
            with contextlib.suppress(ValueError):
                self._content_length = int(value)
        elif name == b"expect":
            self._expect_continue = value.lower() == b"100-continue"

    def on_headers_complete(self) -> None:
        if self._content_length > self.limits.max_body_bytes:
            self._too_large = True
            if self._expect_continue and not self.busy and not self.queue:
                # The client waits for our go-ahead: answer now rather than read the body.
                self._too_large_now()
                return
        if self._expect_continue and self.transport is not None:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def on_body(self, body: bytes) -> None:
        if self._too_large:
            return  # read and dropped: the connection stays in step, memory stays flat
        self._size += len(body)
        if self._size > self.limits.max_body_bytes:
            self._too_large = True
            self._body = []
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        self._in_message = False
        if self.transport is None or self.transport.is_closing():
            return  # answered already (413 before the body) or going away
        path = self._url.split(b"?", 1)[0]
        request = Request(
            method=self.parser.get_method(), path=path, content_type=self._content_type,
            body=b"".join(self._body), keep_alive=self.parser.should_keep_alive(),
            too_large=self._too_large,
        )
        self._body = []
        self.queue.append(request)
        if len(self.queue) > MAX_PIPELINED and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        self._next()

    # --- answering ------------------------------------------------------------------------
    def _next(self) -> None:
        if self.busy or not self.queue:
            return
        self.busy = True
        request = self.queue.popleft()
        try:
            self.handler(self, request)
        except Exception:  # a bug in a handler must not take the connection's worker down
            logger.exception("handler failed", extra={"path": request.path.decode("latin-1")})
            if self.busy:
                self.respond(request, 500, b'{"error_code": "INTERNAL_ERROR", '
                             b'"message": "the server failed to handle the request"}')

    def respond(self, request: Request, status: int, body: bytes,
                content_type: bytes = b"application/json") -> None:
        self.busy = False
        self.answered += 1
        transport = self.transport
        if transport is None:
            return  # the client went away while its request was being answered
        if transport.is_closing():
            return
        close = self.closing or not request.keep_alive or (self._eof and not self.queue)
        transport.write(_head(status, content_type, len(body), close) + body)
        if close:
            transport.close()
            return
        if self.paused and len(self.queue) <= MAX_PIPELINED // 2:
            self.paused = False
            transport.resume_reading()
        if self.queue:
            self._next()
        else:
            self._arm_idle_timer()

    def shutdown(self) -> None:
        """Close once the request in hand (if any) is answered. A connection that has not
        sent its first request yet (one accepted from the backlog during shutdown: its client
        is waiting) gets a short grace to send it."""
        self.closing = True
        if self.busy or self.queue or self._in_message or self.transport is None:
            return
        if self.answered:
            self.transport.close()
        else:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = asyncio.get_running_loop().call_later(SHUTDOWN_GRACE_S, self._idle)

    def _too_large_now(self) -> None:
        self.closing = True
        self.respond(Request(b"POST", self._url, None, b"", False, True), 413,
                     _too_large_body(self.limits.max_body_bytes))

    def _fail(self, status: int, message: bytes) -> None:
        if self.transport is not None:
            body = b'{"error_code": "BAD_REQUEST", "message": "' + message + b'"}'
            self.transport.write(_head(status, b"application/json", len(body), True) + body)
            self.transport.close()

    def _stalled(self) -> None:
        self._timer = None
        if not self._in_message or self.transport is None:
            return
        if self._too_large and not self.busy and not self.queue:
            self._too_large_now()  # the client may be waiting for our answer to go on
        elif self._too_large:
            self._fail(413, b"the body is larger than the limit")
        else:
            self._fail(408, b"the request was not completed in time")

    def _arm_idle_timer(self) -> None:
        if self.transport is None or self._in_message:
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self.limits.keepalive_s, self._idle)

    def _idle(self) -> None:
        self._timer = None
        if not self.busy and not self.queue and not self._in_message \
                and self.transport is not None:
            self.transport.close()


def _too_large_body(limit: int) -> bytes:
    return (b'{"error_code": "REQUEST_TOO_LARGE", "message": "the body is larger than the '
            b'limit of %d bytes (MLOPS_SERVING_MAX_BODY_BYTES)"}' % limit)


_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


def _head(status: int, content_type: bytes, length: int, close: bool) -> bytes:
    return b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\ncontent-length: %d\r\n%s\r\n" % (
        status, _REASONS.get(status, b""), content_type, length,
        b"connection: close\r\n" if close else b"")


class Acceptor:
    """Accepts from a listening socket shared with other processes, one connection per
    wake-up, and serves each with a :class:`Connection`."""

    def __init__(self, sock: socket.socket, handler: Handler, limits: Limits) -> None:
        self.sock = sock
        self.handler = handler
        self.limits = limits
        self.connections: set[Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: set[asyncio.Task[object]] = set()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.sock.setblocking(False)
        self._loop.add_reader(self.sock.fileno(), self._accept)

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())

    def _accept(self) -> bool:
        try:
            conn, _ = self.sock.accept()
        except (BlockingIOError, InterruptedError):
            return False  # another worker took it
        except OSError as exc:  # e.g. EMFILE: keep serving the connections we have
            logger.warning("accept failed", extra={"error": str(exc)})
            return False
        assert self._loop is not None
        task = self._loop.create_task(self._loop.connect_accepted_socket(
            lambda: Connection(self.handler, self.limits, self.connections), conn))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)
        return True

    async def drain(self, timeout: float) -> None:
        """Stop accepting, let every connection finish the request in hand, then close.

        Connections still waiting in the listen backlog are accepted and answered first:
        their clients have sent a request (the kernel completed the handshake while this
        worker was busy) and would otherwise be reset when the socket closes."""
        self.stop()
        while self._accept():
            pass
        if self._pending:
            await asyncio.wait(list(self._pending))
        for connection in list(self.connections):
            connection.shutdown()
        deadline = time.monotonic() + timeout
        while self.connections and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
