"""The local metrics store: one SQLite file under the control centre's state folder.

Every serving worker writes one row per interval (a few seconds) with what it counted:
requests, errors, a latency histogram, its memory and CPU, and the statistics of the inputs and
predictions it saw. The dashboards read intervals back and add them up. The training
statistics of each version served are kept beside them, so the dashboards need nothing else.

WAL mode lets the workers write while a dashboard reads; each write is one short transaction.
Rows older than :data:`RETENTION_S` are deleted now and then. The file is the whole history:
restarting an endpoint or the control centre loses nothing written.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RETENTION_S = 7 * 24 * 3600.0
SCHEMA = """
CREATE TABLE IF NOT EXISTS intervals (
    id INTEGER PRIMARY KEY,
    endpoint TEXT NOT NULL,
    project TEXT NOT NULL,
    version TEXT,
    pid INTEGER NOT NULL,
    started REAL NOT NULL,
    ended REAL NOT NULL,
    requests INTEGER NOT NULL,
    errors_4xx INTEGER NOT NULL,
    errors_5xx INTEGER NOT NULL,
    rows INTEGER NOT NULL,
    latency TEXT NOT NULL,
    rss_bytes INTEGER,
    cpu_percent REAL,
    memory_percent REAL,
    disk_percent REAL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS intervals_by_endpoint ON intervals (endpoint, ended);
CREATE INDEX IF NOT EXISTS intervals_by_time ON intervals (ended);
CREATE TABLE IF NOT EXISTS training_stats (
    project TEXT NOT NULL,
    version TEXT NOT NULL,
    document TEXT NOT NULL,
    PRIMARY KEY (project, version)
);
"""


def path_in(state_dir: Path) -> Path:
    """Where the control centre keeps the store: ``<state>/metrics/metrics.sqlite``."""
    return Path(state_dir) / "metrics" / "metrics.sqlite"


def serving_env(state_dir: Path, endpoint: str, tracking_uri: str | None) -> dict[str, str]:
    """What a local serving process needs to record its metrics into the store under
    ``endpoint`` (and to fetch training statistics from MLflow for drift)."""
    from mlops_control import names

    env = {names.ENV_SERVING_OBSERVER: names.METRICS_OBSERVER,
           names.ENV_METRICS_STORE: str(path_in(state_dir)),
           names.ENV_ENDPOINT_NAME: endpoint}
    if tracking_uri:
        env[names.ENV_TRACKING_URI] = tracking_uri
    return env


@dataclass
class Interval:
    endpoint: str
    project: str
    version: str | None
    pid: int
    started: float
    ended: float
    requests: int = 0
    errors_4xx: int = 0
    errors_5xx: int = 0
    rows: int = 0
    latency: dict[int, int] = field(default_factory=dict)
    rss_bytes: int | None = None
    cpu_percent: float | None = None
    memory_percent: float | None = None
    disk_percent: float | None = None
    data: dict[str, Any] = field(default_factory=dict)
    """``{"features": {name: moments + "counts"}, "predictions": {...}}``"""


class MetricsStore:
    def __init__(self, path: Path | str, timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None,
                                   check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # --- intervals ------------------------------------------------------------------------
    def write(self, interval: Interval) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO intervals (endpoint, project, version, pid, started, ended, "
                "requests, errors_4xx, errors_5xx, rows, latency, rss_bytes, cpu_percent, "
                "memory_percent, disk_percent, data) VALUES "
                "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (interval.endpoint, interval.project, interval.version, interval.pid,
                 interval.started, interval.ended, interval.requests, interval.errors_4xx,
                 interval.errors_5xx, interval.rows,
                 json.dumps({str(k): v for k, v in interval.latency.items()}),
                 interval.rss_bytes, interval.cpu_percent, interval.memory_percent,
                 interval.disk_percent, json.dumps(interval.data, allow_nan=False)))

    def intervals(self, endpoints: Sequence[str], since: float,
                  until: float | None = None) -> list[Interval]:
        """Intervals of ``endpoints`` that ended in ``[since, until]``, oldest first."""
        if not endpoints:
            return []
        marks = ",".join("?" * len(endpoints))
        rows = self._db.execute(
            f"SELECT endpoint, project, version, pid, started, ended, requests, errors_4xx, "
            f"errors_5xx, rows, latency, rss_bytes, cpu_percent, memory_percent, "
            f"disk_percent, data FROM intervals WHERE endpoint IN ({marks}) AND ended >= ? "
            f"AND ended <= ? ORDER BY ended",
            (*endpoints, since, until if until is not None else time.time() + 3600)).fetchall()
        return [Interval(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                         {int(k): v for k, v in json.loads(r[10]).items()}, r[11], r[12],
                         r[13], r[14], json.loads(r[15])) for r in rows]

    def first_ended(self, endpoints: Sequence[str], since: float) -> float | None:
        """When the first interval of ``endpoints`` since ``since`` ended, if any did."""
        if not endpoints:
            return None
        marks = ",".join("?" * len(endpoints))
        row = self._db.execute(f"SELECT MIN(ended) FROM intervals WHERE endpoint IN ({marks}) "
                               f"AND ended >= ?", (*endpoints, since)).fetchone()
        return float(row[0]) if row and row[0] is not None else None

    def endpoints(self) -> list[tuple[str, str, float]]:
        """``(endpoint, project, last written)`` of every endpoint with recorded metrics."""
        rows = self._db.execute(
            "SELECT endpoint, project, MAX(ended) FROM intervals GROUP BY endpoint, project "
            "ORDER BY project, endpoint").fetchall()
        return [(r[0], r[1], float(r[2])) for r in rows]

    def prune(self, before: float) -> int:
        with self._transaction() as db:
            return db.execute("DELETE FROM intervals WHERE ended < ?", (before,)).rowcount

    # --- training statistics --------------------------------------------------------------
    def put_training_stats(self, project: str, version: str, document: dict[str, Any]) -> None:
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO training_stats (project, version, document) "
                       "VALUES (?, ?, ?)", (project, version, json.dumps(document)))

    def training_stats(self, project: str, version: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT document FROM training_stats WHERE project = ? AND "
                               "version = ?", (project, version)).fetchone()
        return json.loads(row[0]) if row else None
