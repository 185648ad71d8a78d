"""The SageMaker bring-your-own-container directory contract, rooted anywhere.

SageMaker mounts everything under ``/opt/ml``. Locally the very same entrypoint runs with
``MLOPS_ML_ROOT`` pointing at a temporary folder laid out the same way.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_control import names


@dataclass(frozen=True)
class MLRoot:
    root: Path

    @classmethod
    def from_env(cls) -> MLRoot:
        return cls(Path(os.environ.get(names.ENV_ML_ROOT, names.DEFAULT_ML_ROOT)))

    @property
    def hyperparameters_file(self) -> Path:
        return self.root / "input" / "config" / "hyperparameters.json"

    def channel(self, name: str = names.TRAINING_CHANNEL) -> Path:
        return self.root / "input" / "data" / name

    @property
    def model_dir(self) -> Path:
        return self.root / "model"

    @property
    def output_dir(self) -> Path:
        return self.root / "output"

    @property
    def failure_file(self) -> Path:
        return self.output_dir / "failure"

    def read_hyperparameters(self) -> dict[str, str]:
        if not self.hyperparameters_file.is_file():
            return {}
        raw = json.loads(self.hyperparameters_file.read_text())
        if not isinstance(raw, dict):
            raise ValueError(f"{self.hyperparameters_file} must hold a JSON object")
        # SageMaker passes every hyperparameter as a string; so do we, locally.
        return {str(k): str(v) for k, v in raw.items()}

    def prepare_training(self, hyperparameters: dict[str, Any],
                         channel_source: Path | None = None) -> None:
        """Lay out a local root as SageMaker would before running ``train``."""
        self.hyperparameters_file.parent.mkdir(parents=True, exist_ok=True)
        self.hyperparameters_file.write_text(
            json.dumps({k: str(v) for k, v in hyperparameters.items()}, indent=2)
        )
        self.model_dir.mkdir(parents=True, exist_ok=True)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if channel_source is not None:
            channel = self.channel()
            channel.parent.mkdir(parents=True, exist_ok=True)
            if channel_source.is_dir():
                channel.symlink_to(channel_source.resolve(), target_is_directory=True)
            else:
                # SageMaker copies the objects under the prefix into the channel folder.
                channel.mkdir()
                (channel / channel_source.name).symlink_to(channel_source.resolve())

    def write_failure(self, reason: str) -> bool:
        """Write the failure reason; if the output folder is not writable, say so on stderr
        (which SageMaker keeps in CloudWatch) rather than fail while reporting a failure."""
        try:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            # SageMaker shows the first 1024 characters as the job's FailureReason.
            self.failure_file.write_text(reason[:4096])
            return True
        except OSError as exc:
            import sys

            print(f"[train] cannot write {self.failure_file} ({exc.strerror}); failure: "
                  f"{reason}", file=sys.stderr, flush=True)
            return False
