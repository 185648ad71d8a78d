"""Steady requests to an endpoint from a background thread: what ``make demo`` (and the
dashboard screenshots) feed the local dashboards with.

Rows are drawn at random from a data set and sent in MLflow's ``dataframe_split`` form at a
fixed pace. :attr:`Traffic.shift` multiplies chosen features (drift on purpose), and
:attr:`Traffic.bad_every` makes every n-th request malformed (a 4xx on purpose). Every answer
is counted by status; a connection that fails counts as ``failed``.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from typing import Any

logger = logging.getLogger("mlops_control.traffic")


class Traffic:
    def __init__(self, url: str, frame: Any, *, per_second: float = 20.0, rows: int = 4,
                 seed: int = 0) -> None:
        import numpy as np

        self.url = url.rstrip("/") + "/invocations"
        self.frame = frame
        self.per_second = per_second
        self.rows = rows
        self.rng = np.random.default_rng(seed)
        self.shift: dict[str, float] = {}
        self.bad_every = 0
        self.statuses: Counter[int | str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values())

    @property
    def failed(self) -> int:
        """Requests that got no answer or a 5xx (a 4xx sent on purpose is not a failure)."""
        return sum(c for s, c in self.statuses.items() if s == "failed" or
                   (isinstance(s, int) and s >= 500))

    def start(self) -> Traffic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def body(self, n: int) -> bytes:
        if self.bad_every and n % self.bad_every == 0:
            return json.dumps({"dataframe_split": {"columns": ["not_a_feature"],
                                                   "data": [[1.0]]}}).encode()
        sample = self.frame.iloc[self.rng.integers(0, len(self.frame), self.rows)].copy()
        for column, factor in dict(self.shift).items():
            sample[column] = sample[column] * factor
        return json.dumps({"dataframe_split": {"columns": list(sample.columns),
                                               "data": sample.values.tolist()}}).encode()

    def _run(self) -> None:
        n = 0
        next_at = time.monotonic()
        while not self._stop.is_set():
            n += 1
            request = urllib.request.Request(self.url, data=self.body(n),
                                             headers={"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    response.read()
                    self.statuses[response.status] += 1
            except urllib.error.HTTPError as exc:
                self.statuses[exc.code] += 1
            except OSError as exc:
                self.statuses["failed"] += 1
                logger.warning("request failed", extra={"url": self.url, "error": str(exc)})
            next_at += 1.0 / self.per_second
            self._stop.wait(max(0.0, next_at - time.monotonic()))
