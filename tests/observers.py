"""An observer for the serving tests: appends one JSON line per batch to the file named by
``TEST_OBSERVER_FILE``."""

from __future__ import annotations

import json
import os
from typing import Any


class FileObserver:
    def __init__(self) -> None:
        self.path = os.environ["TEST_OBSERVER_FILE"]

    def on_batch(self, n_rows: int, latency_s: float, error: bool, inputs: Any,
                 outputs: Any) -> None:
        with open(self.path, "a") as out:
            out.write(json.dumps({"rows": n_rows, "latency_s": latency_s, "error": error,
                                  "inputs_shape": list(getattr(inputs, "shape", ())),
                                  "outputs": None if outputs is None else outputs.tolist(),
                                  "pid": os.getpid()}) + "\n")
