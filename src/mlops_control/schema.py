"""Turn request or file values into a model's input, checked against its signature.

One :class:`InputPlan` per loaded model decides the input's shape once:

- ``matrix``: every input is a double (or every input a float), or the signature is one 2-D
  numeric tensor. Values become one numpy matrix in the model's column order, with a single
  vectorised conversion; that conversion is the type check. Only when it fails are the values
  walked one by one, to name the row and column at fault.
- ``columns``: a column-based signature with other scalar types (long, boolean, string...):
  one typed numpy array per column, becoming a DataFrame once per batch.
- ``frame``: no signature, or nested types only MLflow can check: a pandas DataFrame built as
  MLflow would, handed to the model unchecked (a pyfunc model enforces its own signature).

Conversion follows MLflow's scoring server where it is lenient on purpose (numbers sent as
strings, ``true`` in a double column and ``null`` as NaN are accepted), and is stricter where
MLflow silently changes values: ``1.5`` in an integer column is refused, not truncated.
Row numbers in errors are 1-based data rows.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping, Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from mlops_control import signature as sig
from mlops_control.errors import SchemaError

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

    from mlops_control.model_loader import LoadedModel

ModelInput = Any
"""``np.ndarray`` (matrix plans), ``dict[str, np.ndarray]`` (columns) or ``pd.DataFrame``
(frame)."""

MAX_SHOWN = 60


def shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN] + "..."


class InputPlan:
    def __init__(self, model: LoadedModel) -> None:
        self.model = model
        signature = model.signature
        self.mode: Literal["matrix", "columns", "frame"] = "frame"
        self.specs: tuple[sig.ColumnSpec, ...] = ()
        self.names: tuple[str, ...] = ()
        self.width = 0
        self.dtype = np.dtype("float64")
        self.positional = False
        """Columns are taken by position (a tensor signature), not by name."""
        if signature is not None and signature.is_column_based:
            by_name = {s.name: s for s in signature.columns}
            order = model.input_columns or signature.input_names
            self.specs = tuple(by_name[n] for n in order)
            self.names = tuple(order)
            self.width = len(order)
            types = {s.type for s in self.specs}
            all_required = all(s.required for s in self.specs)
            if all_required and (types == {"double"} or types == {"float"}):
                self.mode = "matrix"
                self.dtype = np.dtype(sig.NUMPY_DTYPES[types.pop()])
            else:
                self.mode = "columns"
        elif signature is not None and _is_float_matrix(signature.tensor):
            tensor = signature.tensor
            assert tensor is not None
            self.mode, self.positional = "matrix", True
            self.width, self.dtype = tensor.shape[1], np.dtype(tensor.dtype)
            self.specs = tuple(sig.ColumnSpec(f"#{i}", _mlflow_type(self.dtype))
                               for i in range(self.width))
        self._layout = lru_cache(maxsize=64)(self._compute_layout)

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.specs if s.required and s.name)

    # --- which sent columns feed which model input ---------------------------------------
    def layout(self, sent: Sequence[str]) -> tuple[int, ...] | None:
        """Positions, in a sent row, of the model's inputs in model order; None when the sent
        columns are exactly the model's. Cached: clients send the same columns every time."""
        try:
            return self._layout(tuple(sent))
        except TypeError:  # a list or an object among the names cannot even be a cache key
            bad = next((n for n in sent if not isinstance(n, str)), sent)
            raise SchemaError(f"column names must be strings; got {shown(bad)}") from None

    def _compute_layout(self, sent: tuple[str, ...]) -> tuple[int, ...] | None:
        if self.positional:
            if len(sent) != self.width:
                raise SchemaError(f"the model takes {self.width} columns by position; the "
                                  f"request has {len(sent)}")
            return None
        if sent == self.names:
            return None
        index: dict[str, int] = {}
        for i, name in enumerate(sent):
            if not isinstance(name, str):
                raise SchemaError(f"column names must be strings; got {shown(name)}")
            if name in index:
                raise SchemaError(f"column {name!r} is named twice")
            index[name] = i
        missing = [n for n in self.names if n not in index]
        if missing:
            raise missing_columns(missing, self.names)
        return tuple(index[n] for n in self.names)

    # --- conversions -----------------------------------------------------------------------
    def from_rows(self, rows: Sequence[Sequence[Any]], first_row: int = 1) -> ModelInput:
        """Rows whose values follow the model's column order (matrix and columns plans)."""
        if self.mode == "frame":
            raise TypeError("frame plans take DataFrames, not rows")
        if not rows:
            raise SchemaError("the input has no rows")
        if self.mode == "matrix":
            try:
                matrix = np.array(rows, dtype=self.dtype)
            except (ValueError, TypeError, OverflowError):
                raise self._diagnose_rows(rows, first_row) from None
            if matrix.ndim != 2 or matrix.shape[1] != self.width:
                raise self._diagnose_rows(rows, first_row)
            return matrix
        self._check_row_shapes(rows, first_row)
        return {spec.name: convert(spec, [row[i] for row in rows], first_row)
                for i, spec in enumerate(self.specs) if spec.name}

    def from_columns(self, columns: Mapping[str, Any]) -> ModelInput:
        """Column name -> list of values (or one scalar each, for a single row)."""
        if self.mode == "frame":
            raise TypeError("frame plans take DataFrames, not columns")
        present = {n: columns[n] for n in self.names if n in columns}
        missing = [s.name for s in self.specs if s.required and s.name not in present]
        if missing:
            raise missing_columns([m for m in missing if m], self.names)
        scalars = [not isinstance(v, list) for v in present.values()]
        if all(scalars):
            present = {n: [v] for n, v in present.items()}
        elif any(scalars):
            raise SchemaError("columns must all be lists of values, or all single values")
        lengths = {n: len(v) for n, v in present.items()}
        if len(set(lengths.values())) > 1:
            raise SchemaError("columns have different lengths: " + ", ".join(
                f"{n!r} has {k}" for n, k in lengths.items()))
        if not present or not next(iter(lengths.values())):
            raise SchemaError("the input has no rows")
        if self.mode == "matrix":
            return self.from_rows(list(zip(*(present[n] for n in self.names), strict=True)))
        return {s.name: convert(s, present[s.name], 1)
                for s in self.specs if s.name in present}

    def from_arrow(self, table: pa.Table, first_row: int = 1) -> ModelInput:
        """A table read with :meth:`arrow_types`, so every value already has its type."""
        if table.num_rows == 0:
            raise SchemaError("the input has no rows")
        if self.mode == "frame":
            return table.to_pandas()
        if self.mode == "matrix":
            # Column-major: each column is one contiguous copy, and a DataFrame made from it
            # (for a model fitted with feature names) is a view, not a second copy.
            matrix = np.empty((table.num_rows, self.width), dtype=self.dtype, order="F")
            for j in range(self.width):
                # By position when the model takes columns by position: their names in the
                # input mean nothing then, and may repeat.
                column = table.column(j if self.positional else self.names[j])
                matrix[:, j] = column.to_numpy()
            return matrix
        out = {}
        for spec in self.specs:
            if spec.name not in table.column_names:
                continue
            column = table.column(spec.name)
            if column.null_count and spec.type in ("long", "integer"):
                row = first_row + int(np.flatnonzero(column.is_null().to_numpy(
                    zero_copy_only=False))[0])
                raise SchemaError(f"column {spec.name!r}, row {row}: a missing value, but "
                                  f"{spec.type} columns cannot hold one")
            values = column.to_numpy()
            if column.null_count and spec.type in ("string", "boolean"):
                # An empty cell is a missing value, NaN as pandas.read_csv (and so MLflow's
                # server) gives the model; pyarrow's None would not be seen by an imputer.
                # (MLflow's own CSV parsing refuses an empty boolean cell; its JSON takes one,
                # and a table scored in batch should not fail where a request would not.)
                values = values.astype(object)
                values[column.is_null().to_numpy(zero_copy_only=False)] = np.nan
            if spec.type == "binary":
                values = np.array(convert(spec, list(values), first_row), dtype=object)
            out[spec.name] = values
        return out

    def arrow_types(self, header: Sequence[str]) -> dict[str, pa.DataType]:
        """Column types to read a CSV with this header: the signature's types for the model's
        columns (missing required columns are an error), strings for the others."""
        import pyarrow as pa

        if self.mode == "frame":
            return {}
        if self.positional:
            if len(header) != self.width:
                raise SchemaError(f"the model takes {self.width} columns by position; the CSV "
                                  f"has {len(header)}")
            return {name: _arrow_type(self.specs[0].type) for name in header}
        missing = [n for n in self.required if n not in header]
        if missing:
            raise missing_columns(missing, self.names)
        twice = next((n for n in self.names if header.count(n) > 1), None)
        if twice is not None:  # which of them would the model take?
            raise SchemaError(f"column {twice!r} is named {header.count(twice)} times in the "
                              "CSV header")
        types = {name: pa.string() for name in header}
        types.update({s.name: _arrow_type(s.type) for s in self.specs
                      if s.name is not None and s.name in header})
        return types

    def concat(self, parts: list[ModelInput]) -> ModelInput:
        if len(parts) == 1:
            return parts[0]
        if self.mode == "matrix":
            return np.concatenate(parts)
        if self.mode == "columns":
            return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
        import pandas as pd

        return pd.concat(parts, ignore_index=True)

    def to_model(self, data: ModelInput) -> np.ndarray | pd.DataFrame:
        """What :meth:`LoadedModel.predict` takes: a matrix as it is, columns as a DataFrame
        (built once per batch, not per request)."""
        if isinstance(data, dict):
            import pandas as pd

            return pd.DataFrame(data)
        return data

    @staticmethod
    def n_rows(data: ModelInput) -> int:
        if isinstance(data, dict):
            return len(next(iter(data.values()))) if data else 0
        return len(data)

    # --- naming the culprit ------------------------------------------------------------------
    def _check_row_shapes(self, rows: Sequence[Any], first_row: int) -> None:
        for i, row in enumerate(rows):
            if not isinstance(row, (list, tuple)):
                raise SchemaError(f"row {first_row + i} is {shown(row)}, not a list of values")
            if len(row) != self.width:
                what = f" ({_list(self.names)})" if self.names else " by position"
                raise SchemaError(f"row {first_row + i} has {len(row)} values; the model takes "
                                  f"{self.width}{what}")

    def _diagnose_rows(self, rows: Sequence[Any], first_row: int) -> SchemaError:
        try:
            self._check_row_shapes(rows, first_row)
            for j, spec in enumerate(self.specs):
                convert(spec, [row[j] for row in rows], first_row)
        except SchemaError as exc:
            return exc
        return SchemaError("the input values do not match the model's signature")


def missing_columns(missing: Sequence[str], expected: Sequence[str]) -> SchemaError:
    noun = "column" if len(missing) == 1 else "columns"
    return SchemaError(f"missing required {noun} {_list(missing)}; the model takes "
                       f"{_list(expected)}")


def _list(names: Sequence[str], limit: int = 8) -> str:
    shown_names = ", ".join(repr(n) for n in names[:limit])
    return shown_names + (f" and {len(names) - limit} more" if len(names) > limit else "")


# --- one column of Python values -> a typed numpy array --------------------------------------
def convert(spec: sig.ColumnSpec, values: Sequence[Any], first_row: int) -> np.ndarray:
    """Values of one column as the numpy type of ``spec``; a value that does not fit raises
    :class:`SchemaError` naming the column and the row."""
    dtype = np.dtype(sig.NUMPY_DTYPES.get(spec.type, "object"))
    if spec.type in ("double", "float"):
        try:
            return np.array(values, dtype=dtype)
        except (ValueError, TypeError, OverflowError):
            pass  # fall through to find the value at fault
    check = _CHECKS.get(spec.type)
    if check is None:
        return np.array(values, dtype=object)
    out = []
    for i, value in enumerate(values):
        try:
            out.append(check(value))
        except (ValueError, TypeError, OverflowError) as exc:
            reason = str(exc) or f"not a {spec.type}"
            raise SchemaError(f"column {spec.name!r}, row {first_row + i}: {shown(value)} is "
                              f"{reason}") from None
    if spec.type == "boolean" and any(v is None or v != v for v in out):
        # A missing value reaches the model as NaN in an object column, as the training frame
        # of a nullable flag held it, so the model's imputer sees it and the answer is
        # pyfunc's on those rows. (MLflow's server casts the column to bool instead, silently
        # scoring null as False and NaN as True.)
        return np.array([np.nan if v is None else v for v in out], dtype=object)
    return np.array(out, dtype=dtype)


def _double(value: Any) -> float:
    if value is None:
        return float("nan")
    if isinstance(value, (str, bool, int, float)):
        try:
            return float(value)
        except ValueError:
            raise ValueError("not a number") from None
    raise TypeError("not a number")


def _integer(bits: int) -> Callable[[Any], int]:
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def check(value: Any) -> int:
        if value is None:
            raise ValueError("a missing value, but integer columns cannot hold one")
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError("not a whole number")
            number = int(value)
        elif isinstance(value, (int, str)):  # bool is an int: MLflow accepts it too
            try:
                number = int(value)
            except ValueError:
                raise ValueError("not a whole number") from None
        else:
            raise TypeError("not a whole number")
        if not low <= number <= high:
            raise ValueError(f"outside the {bits}-bit integer range")
        return number

    return check


_TRUE, _FALSE = frozenset({"true", "1"}), frozenset({"false", "0"})


def _boolean(value: Any) -> bool | float | None:
    if isinstance(value, bool):
        return value
    if value is None or (isinstance(value, float) and value != value):
        return value  # missing: see convert
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError("not a boolean")


def _string(value: Any) -> Any:
    # MLflow's server casts a string column to object and hands the model every value as it
    # came: a missing one (null, or NaN as pandas writes one; an imputer fitted on data with
    # NaN expects NaN, not "nan"), and a number or a boolean too (an encoder with
    # handle_unknown="ignore" scores it as an unknown category). So do we. Only a nested list
    # or object is no value of a column: no model's encoder can hash it.
    if isinstance(value, (list, dict)):
        raise TypeError(f"a nested {'list' if isinstance(value, list) else 'object'}, "
                        "not a string")
    return value


def _binary(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise TypeError("not base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise ValueError("not base64 text") from None


def _datetime(value: Any) -> np.datetime64:
    if value is None:
        return np.datetime64("NaT", "ns")
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        try:
            return np.datetime64(value, "ns")
        except ValueError:
            raise ValueError("not a date-time") from None
    raise TypeError("not a date-time")


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "double": _double, "float": _double, "long": _integer(64), "integer": _integer(32),
    "boolean": _boolean, "string": _string, "binary": _binary, "datetime": _datetime,
}


def _arrow_type(mlflow_type: str) -> pa.DataType:
    import pyarrow as pa

    return {
        "double": pa.float64(), "float": pa.float32(), "long": pa.int64(),
        "integer": pa.int32(), "boolean": pa.bool_(), "string": pa.string(),
        "binary": pa.string(), "datetime": pa.timestamp("ns"),
    }[mlflow_type]


def _is_float_matrix(tensor: sig.TensorSpec | None) -> bool:
    """A 2-D float tensor becomes a matrix plan. Integer tensors stay in frame mode: numpy
    would truncate 1.5 to 1 silently."""
    return tensor is not None and len(tensor.shape) == 2 and tensor.shape[1] > 0 \
        and np.dtype(tensor.dtype).kind == "f"


def _mlflow_type(dtype: np.dtype) -> str:
    if dtype.kind == "f":
        return "float" if dtype.itemsize == 4 else "double"
    return "integer" if dtype.itemsize <= 4 else "long"
