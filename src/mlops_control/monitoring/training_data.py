"""The training data's statistics, taken from the very data the training job trained on.

The project's ``train.py`` calls ``get_data()`` itself. When the training job runs it in its
own process (``python train.py``, the usual case), :class:`DataCapture` puts a ``data``
module in front of it whose ``get_data`` hands the result on and keeps a reference: no second
load, no copy. Otherwise (another command, or a train.py that never calls get_data) the job
calls ``get_data()`` once more after training, which costs one more load of the data.
"""

from __future__ import annotations

import functools
import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

from mlops_control.monitoring import fast_stats

DATA_MODULE = "data"


class DataCapture:
    def __init__(self) -> None:
        self.data: tuple[Any, Any] | None = None
        self.calls = 0

    def install(self, project_dir: Path) -> None:
        """Import the project's data.py as ``data``, with ``get_data`` recording what it
        returns. Call it after stale project modules left the module cache."""
        spec = importlib.util.spec_from_file_location(DATA_MODULE, project_dir / "data.py")
        if spec is None or spec.loader is None:
            return
        module = importlib.util.module_from_spec(spec)
        sys.modules[DATA_MODULE] = module
        try:
            spec.loader.exec_module(module)
        except Exception:
            # train.py will import it again and fail with the project's own traceback.
            sys.modules.pop(DATA_MODULE, None)
            return
        original = getattr(module, "get_data", None)
        if not callable(original):
            return

        @functools.wraps(original)
        def get_data(*args: Any, **kwargs: Any) -> Any:
            result = original(*args, **kwargs)
            if isinstance(result, tuple | list) and len(result) == 2:
                self.data = (result[0], result[1])
                self.calls += 1
            return result

        module.get_data = get_data  # type: ignore[attr-defined]

    def statistics(self, project_dir: Path) -> dict[str, Any]:
        """The training statistics document (see :mod:`stats`), plus how it was made."""
        started = time.perf_counter()
        source = "captured"
        if self.data is None:
            source = "reloaded"
            self.data = _load_again(project_dir)
        X, y = self.data
        document = fast_stats.training_stats(X, y)
        document["source"] = source
        document["seconds"] = round(time.perf_counter() - started, 4)
        return document


def _load_again(project_dir: Path) -> tuple[Any, Any]:
    spec = importlib.util.spec_from_file_location(f"_mlops_stats_{id(project_dir)}",
                                                  project_dir / "data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(project_dir))
    try:
        spec.loader.exec_module(module)
        X, y = module.get_data()
    finally:
        sys.path.remove(str(project_dir))
    return X, y
