"""A model's signature as small typed objects, read from the ``signature`` of an MLmodel file.

MLflow stores the input and output specs as JSON strings inside the MLmodel YAML. Reading them
here, instead of through ``mlflow.models.Signature``, keeps the scoring server and batch
inference free of the mlflow import (about 1.5 s of start-up).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mlops_control.errors import ControlCentreError

SCALAR_TYPES = ("double", "float", "long", "integer", "boolean", "string", "binary", "datetime")
"""MLflow column types whose values are single scalars."""
NUMERIC_TYPES = ("double", "float", "long", "integer")

NUMPY_DTYPES = {
    "double": "float64", "float": "float32", "long": "int64", "integer": "int32",
    "boolean": "bool", "string": "object", "binary": "object", "datetime": "datetime64[ns]",
}


@dataclass(frozen=True)
class ColumnSpec:
    """One named (or, in old signatures, unnamed) column of a column-based signature."""

    name: str | None
    type: str
    """An MLflow type name: one of :data:`SCALAR_TYPES`, or ``array``/``object``/``map``/``any``
    for the nested types this package does not check itself."""
    required: bool = True

    @property
    def is_scalar(self) -> bool:
        return self.type in SCALAR_TYPES


@dataclass(frozen=True)
class TensorSpec:
    name: str | None
    dtype: str
    """A numpy dtype name, e.g. ``float64``."""
    shape: tuple[int, ...]


Spec = ColumnSpec | TensorSpec


@dataclass(frozen=True)
class Signature:
    inputs: tuple[Spec, ...]
    outputs: tuple[Spec, ...] = ()

    @property
    def columns(self) -> tuple[ColumnSpec, ...]:
        return tuple(s for s in self.inputs if isinstance(s, ColumnSpec))

    @property
    def is_column_based(self) -> bool:
        """Every input is a named scalar column: what a model trained on a DataFrame gets."""
        return bool(self.inputs) and all(
            isinstance(s, ColumnSpec) and s.name is not None and s.is_scalar for s in self.inputs
        )

    @property
    def tensor(self) -> TensorSpec | None:
        """The single unnamed tensor input of a model trained on a numpy array, if that is
        what the signature declares."""
        if len(self.inputs) == 1 and isinstance(self.inputs[0], TensorSpec) \
                and self.inputs[0].name is None:
            return self.inputs[0]
        return None

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.inputs if s.name is not None)

    @property
    def required_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.columns if s.name is not None and s.required)


def parse(mlmodel: dict[str, Any]) -> Signature | None:
    """The signature of a parsed MLmodel file, or None when the model was logged without one."""
    raw = mlmodel.get("signature")
    if not raw or not raw.get("inputs"):
        return None
    return Signature(inputs=_specs(raw["inputs"], "inputs"),
                     outputs=_specs(raw.get("outputs"), "outputs"))


def _specs(text: str | list[Any] | None, field: str) -> tuple[Spec, ...]:
    if not text:
        return ()
    try:
        items = json.loads(text) if isinstance(text, str) else text
    except ValueError as exc:
        raise ControlCentreError(f"MLmodel signature.{field} is not valid JSON: {exc}") from None
    if not isinstance(items, list):
        raise ControlCentreError(f"MLmodel signature.{field} must be a JSON list")
    return tuple(_spec(item, field) for item in items)


def _spec(item: Any, field: str) -> Spec:
    if not isinstance(item, dict) or "type" not in item:
        raise ControlCentreError(f"MLmodel signature.{field} has an entry without a type: {item!r}")
    if item["type"] == "tensor":
        tensor = item.get("tensor-spec") or {}
        return TensorSpec(name=item.get("name"), dtype=str(tensor.get("dtype", "float64")),
                          shape=tuple(int(d) for d in tensor.get("shape", (-1,))))
    # Nested types (array, object, map) carry their structure in further keys; only the kind
    # matters here, because values of those types are handed to MLflow to check.
    return ColumnSpec(name=item.get("name"), type=str(item["type"]),
                      required=bool(item.get("required", True)))
