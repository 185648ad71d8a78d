"""Which local port each endpoint listens on, stable across restarts.

Stage ``production`` of the first project deployed gets 5050 and ``staging`` 5051 (the seed
project's port); further stages take 5052, 5053, ... Stages the control centre is configured
with (``MLOPS_STAGES``) are booked when it starts, in alphabetical order, so that each has its
own port before anything serves and the banner can say which; a stage first seen otherwise is
booked when it is first used. Each further project is offset by 10: the second project
deployed serves production on 5060.

The book (``state/run/ports.json``) keeps only project names the control centre accepts
(:data:`names.PROJECT_NAME_PATTERN`): an entry that is not one (the ``<project>`` placeholder an
earlier ``mlops up`` booked) is dropped, so that it holds no block of ports.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from pathlib import Path

from mlops_control import names
from mlops_control.errors import ControlCentreError

PROJECT_STRIDE = 10

Book = dict[str, list[str]]


def _is_project(name: object) -> bool:
    return isinstance(name, str) and names.PROJECT_NAME_PATTERN.match(name) is not None


def _with_stages(book: Book, stages: Iterable[str], serving: Iterable[str] = ()) -> Book:
    """``book`` with the stages it lacks added in alphabetical order (those it has keep their
    offsets: adding a stage never moves a port). Past the block's 10 offsets, a new stage takes
    the offset of one that is neither asked for nor ``serving`` (a stage an earlier
    configuration used)."""
    wanted = list(dict.fromkeys(stages))
    if len(wanted) > PROJECT_STRIDE:
        raise ControlCentreError(
            f"{names.ENV_STAGES} names {len(wanted)} stages ({', '.join(wanted)}); at most "
            f"{PROJECT_STRIDE} are supported locally")
    slots = list(book["stages"])
    keep = set(wanted) | set(serving)
    free = [i for i, stage in enumerate(slots) if stage not in keep]
    for stage in sorted(set(wanted) - set(slots)):
        if len(slots) < PROJECT_STRIDE:
            slots.append(stage)
        elif free:
            slots[free.pop(0)] = stage
        else:
            busy = sorted(set(slots) - set(wanted))
            raise ControlCentreError(
                f"no port left for stage {stage!r}: stages {', '.join(busy)} still serve; "
                "retire their endpoints (remove their deploy tags) and start again")
    return {"projects": book["projects"], "stages": slots}


class PortBook:
    def __init__(self, file: Path, base: int = names.STAGE_PORTS["production"]) -> None:
        self.file = file
        self.base = base
        self._lock = threading.Lock()

    def _load(self) -> tuple[Book, bool]:
        """The book, and whether it had entries to drop (that are not project names, or
        repeated)."""
        if not self.file.exists():
            return {"projects": [], "stages": list(names.STAGE_PORTS)}, False
        data: Book = json.loads(self.file.read_text())
        projects = [p for p in dict.fromkeys(data["projects"]) if _is_project(p)]
        return {"projects": projects, "stages": data["stages"]}, projects != data["projects"]

    def _save(self, book: Book) -> None:
        self.file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_suffix(".tmp")
        tmp.write_text(json.dumps(book, indent=2))
        tmp.replace(self.file)

    def _port(self, book: Book, project: str | None, stage: str) -> int:
        projects, stages = book["projects"], book["stages"]
        index = projects.index(project) if project in projects else len(projects)
        offset = stages.index(stage) if stage in stages else len(stages)
        return self.base + PROJECT_STRIDE * index + offset

    def projects(self) -> list[str]:
        """The projects with ports, in the order they were first deployed."""
        with self._lock:
            return list(self._load()[0]["projects"])

    def book_stages(self, stages: Iterable[str], serving: Iterable[str] = ()) -> None:
        """Give each of ``stages`` a port offset, before anything serves (the control centre
        does, with its configured stages; ``serving``: stages with an endpoint, whose offsets
        are never reclaimed): the ports :meth:`describe` shows are then the ports they serve
        on, whichever stage deploys first."""
        with self._lock:
            book, dirty = self._load()
            booked = _with_stages(book, stages, serving)
            if dirty or booked != book:
                self._save(booked)

    def preview(self, project: str | None, stage: str) -> int:
        """The port ``stage`` of ``project`` has, or would get, without booking anything
        (``None``: the next project deployed). Banners use it: booking a placeholder would
        shift every real project's ports."""
        with self._lock:
            book = self._load()[0]
        return self._port(book, project, stage)

    def describe(self, stages: list[str]) -> str:
        """Where each known project's stages serve, or where the first project deployed will,
        e.g. ``test-project: production on :5050, staging on :5051`` (stages not booked yet
        are shown where :meth:`book_stages` puts them)."""
        with self._lock:
            book = _with_stages(self._load()[0], stages)

        def line(project: str | None) -> str:
            return ", ".join(f"{s} on :{self._port(book, project, s)}" for s in stages)

        known = book["projects"]
        if not known:
            return f"first project deployed: {line(None)}"
        return "; ".join(f"{p}: {line(p)}" for p in known)

    def port(self, project: str, stage: str) -> int:
        if not _is_project(project):
            raise ValueError(f"{project!r} is not a project name: it gets no port")
        with self._lock:
            book, changed = self._load()
            if project not in book["projects"]:
                book["projects"].append(project)
                changed = True
            if stage not in book["stages"]:
                book["stages"].append(stage)
                changed = True
            if changed:
                self._save(book)
            stage_offset = book["stages"].index(stage)
            if stage_offset >= PROJECT_STRIDE:
                raise ValueError(f"more than {PROJECT_STRIDE} stages are not supported locally")
            return self._port(book, project, stage)
