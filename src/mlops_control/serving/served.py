"""A model made ready to serve: loaded, its input plan built, warmed up."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import orjson

from mlops_control.model_loader import LoadedModel, load_model
from mlops_control.schema import InputPlan

logger = logging.getLogger("mlops_control.serving")


@dataclass
class ServedModel:
    model: LoadedModel
    plan: InputPlan
    version_body: bytes
    """The answer to GET /version, made once."""

    @property
    def label(self) -> str:
        return f"{self.model.name or '?'}/{self.model.version or '?'}"


def prepare(model_dir: Path | str, name: str | None, version: str | None) -> ServedModel:
    model = load_model(model_dir, name=name, version=version)
    plan = InputPlan(model)
    served = ServedModel(model, plan, orjson.dumps(model.describe()))
    _warm_up(served)
    return served


def _warm_up(served: ServedModel) -> None:
    """Predict the model's input example once, so the first real request does not pay for
    lazy imports and first-call set-up. A model without an example, or one that fails on it,
    is served all the same: a warm-up is an optimisation, not a test."""
    from mlops_control.serving import protocol

    example = served.model.path / "serving_input_example.json"
    if not example.is_file():
        return
    try:
        parsed = protocol.parse(example.read_bytes(), protocol.JSON, served.plan)
        data = parsed.data if parsed.rows is None else served.plan.from_rows(parsed.rows)
        served.model.predict(served.plan.to_model(data))
    except Exception as exc:  # see the docstring
        logger.warning("warm-up failed", extra={"model_dir": str(served.model.path),
                                                "error": str(exc)[:200]})
    # pyarrow's CSV reader is imported on first use otherwise (about 0.1 s).
    import pyarrow.csv  # noqa: F401

