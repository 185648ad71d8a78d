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
        self._failed: dict[Path, str] = {}
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
            if file.parent.is_symlink():
                # A project folder that links elsewhere: nothing in it is ours to take or
                # to move aside (refusing would move files out of the linked folder).
                if file.parent not in self._failed:
                    self._failed[file.parent] = "symbolic link"
                    logger.error("inbox folder is a symbolic link; ignored", extra={
                        "folder": str(file.parent)})
                continue
            if (file.is_file() or file.is_symlink()) and not file.name.startswith("."):
                current[file] = file.lstat().st_size
        for file, size in current.items():
            if self._sizes.get(file) == size:
                try:
                    self._take(file)
                except OSError as exc:
                    # One unreadable or unmovable file must not stop the others from being
                    # taken; it is tried again at the next scan and reported once.
                    if self._failed.get(file) != str(exc):
                        self._failed[file] = str(exc)
                        logger.error("inbox file could not be taken; will retry", extra={
                            "file": str(file), "error": str(exc)})
        self._sizes = {f: s for f, s in current.items() if f.exists()}
        self._failed = {f: e for f, e in self._failed.items()
                        if f in self._sizes or f.is_symlink()}

    def _take(self, file: Path) -> None:
        project = file.parent.name
        if file.is_symlink():
            # Whoever can write to the inbox must not make the control centre read (and
            # keep, under data/) any file it can reach. The link itself is moved aside.
            self._reject(file, "symbolic links are not taken: copy the data file itself")
            return
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

