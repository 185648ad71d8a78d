"""The local data inbox: a file dropped into ``<inbox>/<project>/`` is new training data.

Polling, not inotify: it works on every file system (network mounts included), and a file is
taken only once its size has stopped changing, so a half-copied file is never trained on.
Taken files move to ``<state>/data/<project>/`` (the lineage points there, so the exact data
a version was trained on stays on disk); refused ones to ``<inbox>/<project>/.rejected/``
with a note saying why.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

from mlops_control import events
from mlops_control.errors import EventError

logger = logging.getLogger("mlops_control.inbox")


class InboxWatcher:
    def __init__(self, inbox: Path, archive: Path, on_data: Callable[[events.DataEvent], None],
                 interval_s: float = 1.0) -> None:
        self.inbox = inbox
        self.archive = archive
        self.on_data = on_data
        self.interval_s = interval_s
        self._sizes: dict[Path, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.inbox.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._loop, name="inbox", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.scan()
            except Exception:
                logger.exception("inbox scan failed")

    def scan(self) -> None:
        """Take every file whose size was the same at the previous scan."""
        current: dict[Path, int] = {}
        for file in self.inbox.glob("*/*"):
            if file.is_file() and not file.name.startswith("."):
                current[file] = file.stat().st_size
        for file, size in current.items():
            if self._sizes.get(file) == size:
                self._take(file)
        self._sizes = {f: s for f, s in current.items() if f.exists()}

    def _take(self, file: Path) -> None:
        project = file.parent.name
        try:
            events.project_from_key(f"{project}/{file.name}", "")
        except EventError as exc:
            self._reject(file, exc.reason)
            return
        digest = _sha256(file)
        stamp = time.strftime("%Y%m%dT%H%M%S")
        target = self.archive / project / f"{stamp}-{digest[:8]}-{file.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(file), target)
        logger.info("new training data", extra={"project": project, "file": str(target)})
        self.on_data(events.DataEvent(event_id=f"inbox-{digest}", project=project,
                                      location=str(target), version=f"sha256:{digest}",
                                      size=target.stat().st_size))

    def _reject(self, file: Path, reason: str) -> None:
        rejected = file.parent / ".rejected"
        rejected.mkdir(exist_ok=True)
        shutil.move(str(file), rejected / file.name)
        (rejected / f"{file.name}.reason.txt").write_text(reason + "\n")
        logger.warning("inbox file refused", extra={"file": str(file), "reason": reason})


def _sha256(file: Path) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

