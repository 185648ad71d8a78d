"""The ``shelf`` fixture: model folders built once per test session, on first use.

Both tests/unit and tests/integration import the fixture into their conftest; the module-level
cache makes sure each model is built once even so."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests import models

_BUILT: dict[str, models.SavedModel] = {}


class Shelf:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _get(self, key: str, build: Callable[[Path], models.SavedModel]) -> models.SavedModel:
        if key not in _BUILT:
            self.root.mkdir(parents=True, exist_ok=True)
            _BUILT[key] = build(self.root / key)
        return _BUILT[key]

    def forest(self) -> models.SavedModel:
        return self._get("forest", models.forest)

    def other_forest(self) -> models.SavedModel:
        return self._get("other_forest", lambda p: models.forest(p, seed=7, trees=3))

    def constant(self, value: int) -> models.SavedModel:
        return self._get(f"constant_{value}", lambda p: models.constant(p, value))

    def probabilities(self) -> models.SavedModel:
        return self._get("probabilities", models.probabilities)

    def mixed(self) -> models.SavedModel:
        return self._get("mixed", models.mixed)

    def tensor(self) -> models.SavedModel:
        return self._get("tensor", models.tensor)

    def fragile(self) -> models.SavedModel:
        return self._get("fragile", models.fragile)

    def slow(self) -> models.SavedModel:
        return self._get("slow", models.slow)

    def unsigned(self) -> models.SavedModel:
        return self._get("unsigned", models.unsigned)

    def broken(self) -> Path:
        key = "broken"
        if key not in _BUILT:
            source = self.forest().path
            _BUILT[key] = models.SavedModel(models.broken(self.root / key, source), None, None)
        return _BUILT[key].path


@pytest.fixture(scope="session")
def shelf(tmp_path_factory: pytest.TempPathFactory) -> Shelf:
    return Shelf(tmp_path_factory.getbasetemp() / "models")
