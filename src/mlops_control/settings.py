"""Typed settings read from the environment, each with the reason it exists.

Local paths default to folders beside the current working directory (the repository when you
run ``make``), so that a fresh clone works with no configuration at all.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from mlops_control import names

ENV_MANAGERS = ("local", "virtualenv", "conda")


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    """Git-ignored folder for everything the embedded default writes: the MLflow database and
    artifacts, downloaded models, logs, pid files, the inbox and the metrics store."""
    projects_dir: Path
    """Folder holding one MLflow Project per model."""
    tracking_uri: str | None
    """An existing MLflow server to use instead of the embedded one (``MLFLOW_TRACKING_URI``)."""
    env_manager: str
    """How a project's environment is made for local training: ``local`` (this interpreter),
    ``virtualenv`` (from its python_env.yaml) or ``conda`` (from its conda.yaml)."""
    mlflow_port: int
    receiver_port: int
    endpoint_base_port: int = names.STAGE_PORTS["production"]
    """Port of the first project's production endpoint; the others follow it (see ports.py)."""

    @property
    def mlflow_dir(self) -> Path:
        return self.state_dir / "mlflow"

    @property
    def models_dir(self) -> Path:
        return self.state_dir / "models"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def run_dir(self) -> Path:
        return self.state_dir / "run"

    @property
    def inbox_dir(self) -> Path:
        return self.state_dir / "inbox"

    @property
    def secrets_dir(self) -> Path:
        return self.state_dir / "secrets"


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None


def load() -> Settings:
    env_manager = os.environ.get(names.ENV_ENV_MANAGER, "local")
    if env_manager not in ENV_MANAGERS:
        raise ValueError(
            f"{names.ENV_ENV_MANAGER}={env_manager!r} is not one of {', '.join(ENV_MANAGERS)}"
        )
    return Settings(
        state_dir=Path(os.environ.get(names.ENV_STATE_DIR, "state")).resolve(),
        projects_dir=Path(os.environ.get(names.ENV_PROJECTS_DIR, "projects")).resolve(),
        tracking_uri=os.environ.get(names.ENV_TRACKING_URI) or None,
        env_manager=env_manager,
        mlflow_port=_int("MLOPS_MLFLOW_PORT", names.DEFAULT_MLFLOW_PORT),
        receiver_port=_int("MLOPS_RECEIVER_PORT", names.DEFAULT_RECEIVER_PORT),
        endpoint_base_port=_int("MLOPS_ENDPOINT_PORT", names.STAGE_PORTS["production"]),
    )
