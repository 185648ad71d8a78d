"""Deliveries already seen, kept in SQLite so a replay is caught even after a restart."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

KEEP_S = 24 * 3600
"""Far longer than the 5-minute signature window: a replay after that fails as stale anyway."""


class SeenDeliveries:
    def __init__(self, file: Path) -> None:
        file.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(file), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, at REAL)")
        self._lock = threading.Lock()

    def first_time(self, delivery_id: str) -> bool:
        """Record ``delivery_id``; True unless it was seen before."""
        now = time.time()
        with self._lock:
            self._db.execute("DELETE FROM seen WHERE at < ?", (now - KEEP_S,))
            cursor = self._db.execute("INSERT OR IGNORE INTO seen VALUES (?, ?)",
                                      (delivery_id, now))
            return cursor.rowcount == 1

    def close(self) -> None:
        with self._lock:
            self._db.close()
