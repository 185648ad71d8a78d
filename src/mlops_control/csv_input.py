"""Reading CSV with pyarrow against a model's signature, with errors that name row and column.

pyarrow parses and converts in C++ and releases the GIL while doing so. Read with threads off,
its errors carry the row (``Row #N``, the header being row 1) and the column index; they are
rewritten here in the words of the rest of the control centre.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from mlops_control.errors import SchemaError
from mlops_control.schema import InputPlan, shown

if TYPE_CHECKING:
    import pyarrow.csv as pacsv

_ROW = re.compile(r"Row #(\d+): (.*)", re.DOTALL)
_COLUMN = re.compile(r"In CSV column #(\d+)")
_BAD_VALUE = re.compile(r"conversion error to [^:]+: invalid value '(.*)'", re.DOTALL)
_COUNT = re.compile(r"Expected (\d+) columns, got (\d+): ?(.*)", re.DOTALL)


def header_of(first_line: bytes) -> list[str]:
    """Column names from a CSV header line (quotes and all)."""
    text = first_line.decode("utf-8-sig", errors="replace").rstrip("\r\n")
    try:
        names = next(csv.reader([text]), [])
    except csv.Error as exc:  # e.g. a lone carriage return inside the line
        raise SchemaError(f"the CSV header row cannot be read: {exc}") from None
    if not names or all(not n.strip() for n in names):
        raise SchemaError("the CSV has no header row: its first line must name the columns")
    return names


def options(plan: InputPlan, header: Sequence[str], model_columns_only: bool,
            headerless: bool = False) -> tuple[pacsv.ReadOptions, pacsv.ConvertOptions]:
    """Options that read the model's columns with their signature types, and any other column
    as text (so type inference can never disagree between blocks), or skip it. ``headerless``
    reads blocks cut from the middle of a file, with the names from its header.

    Threads are off on purpose: only the single-threaded reader puts row numbers in its
    errors; callers get their parallelism across blocks instead."""
    import pyarrow.csv as pacsv

    types = plan.arrow_types(header)
    include: list[str] = []  # every column, in file order: names may repeat (positional)
    if model_columns_only and not plan.positional and plan.mode != "frame":
        include = [n for n in header if n in plan.names]
    read = pacsv.ReadOptions(use_threads=False,
                             column_names=list(header) if headerless else None)
    # Empty cells of string columns are missing values, as pandas.read_csv reads them.
    convert = pacsv.ConvertOptions(column_types=types, include_columns=include,
                                   strings_can_be_null=True)
    return read, convert


def as_schema_error(exc: Exception, plan: InputPlan, header: Sequence[str],
                    row_offset: int) -> SchemaError:
    """A pyarrow read error as a :class:`SchemaError` naming the column and the 1-based data
    row: pyarrow's ``Row #N`` plus ``row_offset`` (-1 when pyarrow read the header itself,
    the rows before the block when it read a block cut from a file)."""
    message = str(exc)
    row_match = _ROW.search(message)
    if row_match is None:
        return SchemaError(f"the CSV could not be read after row {max(row_offset, 0)}: "
                           f"{message}")
    row = int(row_match.group(1)) + row_offset
    problem = row_match.group(2).strip()
    column, value = _COLUMN.search(message), _BAD_VALUE.search(problem)
    if column is not None and value is not None:
        index = int(column.group(1))
        name = header[index] if index < len(header) else f"#{index}"
        expected = _type_of(plan, name)
        return SchemaError(f"column {name!r}, row {row}: {shown(value.group(1))} is not a "
                           f"{expected}")
    count = _COUNT.match(problem)
    if count is not None:
        return SchemaError(f"row {row} has {count.group(2)} values but the header names "
                           f"{count.group(1)} columns ({shown(count.group(3).strip())})")
    return SchemaError(f"row {row}: {problem}")


def _type_of(plan: InputPlan, name: str) -> str:
    if plan.positional and plan.specs:
        return plan.specs[0].type
    return next((s.type for s in plan.specs if s.name == name), "value of the right type")
