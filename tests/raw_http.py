"""Bytes over a socket, exactly as given: for requests no HTTP client would send."""

from __future__ import annotations

import contextlib
import socket


def exchange(port: int, data: bytes, timeout: float = 10.0, half_close: bool = False) -> bytes:
    """Send ``data`` to 127.0.0.1:``port`` and read until the server closes. With
    ``half_close`` the sending side is closed first, as `nc -N` or an HTTP/1.0 client may."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
        answer = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                answer += chunk
    return answer
