"""What tests that run real servers share: waiting for a condition, a block of free ports,
and a load generator that keeps every answer."""

from __future__ import annotations

import http.client
import json
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mlops_control import procs


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 120.0,
               every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def free_block(size: int = 60) -> int:
    """A base port with ``size`` free ports above it (endpoints of several projects), below
    Linux's ephemeral range (32768-60999), where the kernel could hand one of them to some
    outgoing connection."""
    import random

    for _ in range(200):
        base = random.randrange(20000, 32000)
        if not any(procs.port_in_use(base + i) for i in range(size)):
            return base
    raise RuntimeError("no free block of ports")


# --- load ----------------------------------------------------------------------------------
@dataclass
class Answer:
    at: float
    latency: float
    status: int
    prediction: Any


@dataclass
class Load:
    """Clients posting one row each on kept-alive connections as fast as they can, bounded in
    time by the test. Every answer is kept: its time, latency, status and prediction."""

    url: str
    body: bytes
    clients: int = 4
    answers: list[Answer] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _client(self) -> None:
        host = self.url.removeprefix("http://").split("/")[0]
        conn: http.client.HTTPConnection | None = None
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, timeout=30)
                conn.request("POST", "/invocations", self.body,
                             {"Content-Type": "application/json"})
                response = conn.getresponse()
                payload = response.read()
                answer = Answer(started, time.monotonic() - started, response.status,
                                json.loads(payload).get("predictions", [None])[0]
                                if response.status == 200 else payload[:200])
                with self._lock:
                    self.answers.append(answer)
                    if response.status != 200:
                        self.failures.append(f"HTTP {response.status}: {payload[:200]!r}")
                if response.will_close:
                    conn.close()
                    conn = None
            except (OSError, ValueError, http.client.HTTPException) as exc:
                with self._lock:
                    self.failures.append(repr(exc))
                if conn is not None:
                    conn.close()
                conn = None
                time.sleep(0.05)
        if conn is not None:
            conn.close()

    def __enter__(self) -> Load:
        self._threads = [threading.Thread(target=self._client, daemon=True)
                         for _ in range(self.clients)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    @property
    def ok(self) -> int:
        with self._lock:
            return sum(1 for a in self.answers if a.status == 200)

    def first_answer(self, prediction: Any, after: float) -> float | None:
        with self._lock:
            times = [a.at + a.latency for a in self.answers
                     if a.status == 200 and a.prediction == prediction and a.at >= after]
        return min(times) if times else None

    def latencies(self, start: float = 0.0, end: float = float("inf")) -> list[float]:
        with self._lock:
            return sorted(a.latency for a in self.answers if start <= a.at <= end)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[min(98, int(q) - 1)]
