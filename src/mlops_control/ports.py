"""Which local port each endpoint listens on, stable across restarts.

Stage ``production`` of the first project deployed gets 5050 and ``staging`` 5051 (the seed
project's port); further stages take 5052, 5053, ... in the order first seen. Each further
project is offset by 10: the second project deployed serves production on 5060.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

from mlops_control import names

PROJECT_STRIDE = 10


class PortBook:
    def __init__(self, file: Path, base: int = names.STAGE_PORTS["production"]) -> None:
        self.file = file
        self.base = base
        self._lock = threading.Lock()

    def _load(self) -> dict[str, list[str]]:
        if self.file.exists():
            data: dict[str, list[str]] = json.loads(self.file.read_text())
            return data
        return {"projects": [], "stages": list(names.STAGE_PORTS)}

    def port(self, project: str, stage: str) -> int:
        with self._lock:
            book = self._load()
            changed = False
            if project not in book["projects"]:
                book["projects"].append(project)
                changed = True
            if stage not in book["stages"]:
                book["stages"].append(stage)
                changed = True
            if changed:
                self.file.parent.mkdir(parents=True, exist_ok=True)
                self.file.write_text(json.dumps(book, indent=2))
            stage_offset = book["stages"].index(stage)
            if stage_offset >= PROJECT_STRIDE:
                raise ValueError(f"more than {PROJECT_STRIDE} stages are not supported locally")
            return self.base + PROJECT_STRIDE * book["projects"].index(project) + stage_offset
