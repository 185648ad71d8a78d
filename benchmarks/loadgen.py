"""A small closed-loop HTTP/1.1 load generator: N keep-alive connections, each sending the
next request as soon as the previous answer arrives.

It is written on bare asyncio protocols (no streams, no tasks per request) so that the client
costs as little CPU as possible: on a 2-core machine it shares the cores with the server it
measures, and the same client is used against every server, so ratios stay fair.

    python benchmarks/loadgen.py --port 5050 --concurrency 8 --duration 5 --body body.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)


class _Client(asyncio.Protocol):
    def __init__(self, request: bytes, stats: Stats, measure_from: float, stop_at: float,
                 done: asyncio.Future[None]) -> None:
        self.request = request
        self.stats = stats
        self.measure_from = measure_from
        self.stop_at = stop_at
        self.done = done
        self.buffer = b""
        self.sent_at = 0.0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._send()

    def _send(self) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buffer[:end]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(self.buffer) < end + 4 + length:
            return
        now = time.perf_counter()
        status = int(head.split(b" ", 2)[1])
        self.buffer = self.buffer[end + 4 + length:]
        if self.sent_at >= self.measure_from:
            self.stats.latencies.append(now - self.sent_at)
            self.stats.statuses[status] = self.stats.statuses.get(status, 0) + 1
            if status != 200:
                self.stats.errors += 1
        if now >= self.stop_at or b"connection: close" in head.lower():
            assert self.transport is not None
            self.transport.close()
            return
        self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            if time.perf_counter() < self.stop_at:
                self.stats.errors += 1
            self.done.set_result(None)


async def _run(host: str, port: int, request: bytes, concurrency: int, duration: float,
               warmup: float) -> Stats:
    loop = asyncio.get_running_loop()
    stats = Stats()
    start = time.perf_counter()
    measure_from, stop_at = start + warmup, start + warmup + duration
    waits = []
    for _ in range(concurrency):
        done: asyncio.Future[None] = loop.create_future()
        await loop.create_connection(
            lambda d=done: _Client(request, stats, measure_from, stop_at, d), host, port)
        waits.append(done)
    await asyncio.wait_for(asyncio.gather(*waits), warmup + duration + 60)
    return stats


def http_request(body: bytes, content_type: str = "application/json",
                 path: str = "/invocations") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def run_load(host: str, port: int, body: bytes, concurrency: int, duration: float,
             warmup: float = 1.0, content_type: str = "application/json") -> dict[str, float]:
    """Closed-loop load for ``duration`` seconds after ``warmup``; latency percentiles in ms."""
    stats = asyncio.run(_run(host, port, http_request(body, content_type), concurrency,
                             duration, warmup))
    return summarise(stats, duration, concurrency)


def summarise(stats: Stats, duration: float, concurrency: int) -> dict[str, float]:
    lat = sorted(stats.latencies)

    def pct(q: float) -> float:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 2) if lat else float("nan")

    return {"concurrency": concurrency, "requests": len(lat), "errors": stats.errors,
            "rps": round(len(lat) / duration, 1), "p50_ms": pct(0.50), "p90_ms": pct(0.90),
            "p99_ms": pct(0.99), "max_ms": pct(1.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--body", type=Path, required=True, help="file with the request body")
    parser.add_argument("--content-type", default="application/json")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    result = run_load(args.host, args.port, args.body.read_bytes(), args.concurrency,
                      args.duration, args.warmup, args.content_type)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
