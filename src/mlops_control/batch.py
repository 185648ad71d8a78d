"""Batch inference: a CSV in, the same rows with their predictions out, in bounded memory.

Measured for 1M rows of 20 doubles and a 50-tree forest, on one core: parsing 1.0 s,
predicting 3.7 s (4.3 s in 10k-row calls: a forest's cost per row falls with larger calls),
and 2.3 s to format the input's numbers again with pyarrow's CSV writer. Hence the pipeline:

- The calling thread reads the file in 4 MB blocks cut at line ends and parses them with
  pyarrow (C++, the signature's types, GIL released), so it knows every row's number, for
  errors. Blocks are gathered into chunks of about 25k rows, kept as one matrix each.
- A pool with one thread per core predicts chunks (the trees release the GIL, so the threads
  run in parallel).
- The calling thread writes the chunks in input order as they are done. The input text is not
  formatted again: each block is read back from the file (the page cache has it) and every
  line is copied through with ``,<prediction>`` appended, by pyarrow's string kernels
  (0.2 s for 1M rows). The original columns stay byte for byte what they were, and no text is
  held in memory while its chunk waits for the model.

At most one chunk per thread, plus one, waits in the pool, so memory stays flat whatever the
file size. The output is written beside the target and renamed into place, so a failed run
never leaves a partial file that looks complete. A row that does not fit the model's
signature stops the run with a :class:`SchemaError` naming the row (1-based, header not
counted) and the column.
"""

from __future__ import annotations

import io
import logging
import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from mlops_control import csv_input
from mlops_control.errors import ControlCentreError
from mlops_control.model_loader import LoadedModel, load_model
from mlops_control.schema import InputPlan

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

logger = logging.getLogger("mlops_control.batch")

BLOCK_BYTES = 4 << 20
CHUNK_ROWS = 25_000
"""Rows per predict call. Measured: 25k rows cost 3.7 s per 1M, 10k rows 4.3 s, 50k rows no
less than 25k; the peak memory grows by about 1 MB per 1,000 rows of chunk (350 MB at 25k,
370 MB at 50k, 410 MB at 100k for this model)."""
PREDICTION = "prediction"


@dataclass(frozen=True)
class BatchReport:
    rows: int
    seconds: float
    output: Path


@dataclass(frozen=True)
class _Block:
    """Where a block of whole lines sits in the input file, and how many rows it holds."""

    offset: int
    length: int
    rows: int
    add_newline: bool = False
    """The file's last line has no newline; the block as parsed had one added."""


@dataclass
class _Chunk:
    first_row: int
    blocks: list[_Block] = field(default_factory=list)
    tables: list[pa.Table] = field(default_factory=list)
    predictions: Future[np.ndarray] | None = None

    @property
    def rows(self) -> int:
        return sum(b.rows for b in self.blocks)


def score_csv(model_dir: Path, input_csv: Path, output_csv: Path,
              progress: Callable[[int], None] | None = None) -> BatchReport:
    """Score every row of ``input_csv`` with the model in ``model_dir``; write the input's
    columns plus ``prediction`` (``prediction_0``... when the model gives several values per
    row). ``progress`` is called with the number of rows written so far."""
    started = time.perf_counter()
    input_csv, output_csv = Path(input_csv), Path(output_csv)
    if not input_csv.is_file():
        raise ControlCentreError(f"no input file {input_csv}")
    model = load_model(model_dir)
    _one_thread_per_predict(model)
    partial = output_csv.with_name(f".{output_csv.name}.partial")
    output_csv.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(input_csv, "rb") as source, open(partial, "wb") as sink:
            rows = _Pipeline(model, source, sink, progress).run()
        os.replace(partial, output_csv)
    finally:
        partial.unlink(missing_ok=True)
    report = BatchReport(rows=rows, seconds=time.perf_counter() - started, output=output_csv)
    logger.info("batch scored", extra={"rows": rows, "seconds": round(report.seconds, 2),
                                       "input": str(input_csv), "output": str(output_csv)})
    return report


class _Pipeline:
    def __init__(self, model: LoadedModel, source: BinaryIO, sink: BinaryIO,
                 progress: Callable[[int], None] | None) -> None:
        self.model = model
        self.plan = InputPlan(model)
        self.source = source
        self.sink = sink
        self.progress = progress
        self.header_line = source.readline()
        self.header = csv_input.header_of(self.header_line)
        self.read, self.convert = csv_input.options(self.plan, self.header,
                                                    model_columns_only=False, headerless=True)
        self.rows_written = 0

    def run(self) -> int:
        threads = _cores()
        waiting: deque[_Chunk] = deque()
        chunk = _Chunk(first_row=1)
        with ThreadPoolExecutor(threads, thread_name_prefix="predict") as pool:
            try:
                for block, text in _blocks(self.source, start=len(self.header_line)):
                    table = self._parse(text, chunk.first_row + chunk.rows - 1)
                    if table.num_rows == 0:
                        continue
                    chunk.blocks.append(_Block(block.offset, block.length, table.num_rows,
                                               block.add_newline))
                    chunk.tables.append(table)
                    if chunk.rows >= CHUNK_ROWS:
                        waiting.append(self._submit(pool, chunk))
                        chunk = _Chunk(first_row=chunk.first_row + chunk.rows)
                        while len(waiting) > threads:
                            self._write(waiting.popleft())
                if chunk.blocks:
                    waiting.append(self._submit(pool, chunk))
                while waiting:
                    self._write(waiting.popleft())
            finally:
                for pending in waiting:
                    if pending.predictions is not None:
                        pending.predictions.cancel()
        if self.rows_written == 0:  # a header and no rows: the output is a header too
            self.sink.write(_output_header(self.header_line,
                                           _prediction_names(self.header, 1)))
        return self.rows_written

    def _parse(self, text: bytes, rows_before: int) -> pa.Table:
        import pyarrow as pa
        import pyarrow.csv as pacsv

        try:
            return pacsv.read_csv(io.BytesIO(text), read_options=self.read,
                                  convert_options=self.convert)
        except (pa.ArrowInvalid, pa.ArrowKeyError) as exc:
            raise csv_input.as_schema_error(exc, self.plan, self.header,
                                            row_offset=rows_before) from None

    def _submit(self, pool: ThreadPoolExecutor, chunk: _Chunk) -> _Chunk:
        import pyarrow as pa

        table = chunk.tables[0] if len(chunk.tables) == 1 else pa.concat_tables(chunk.tables)
        data = self.plan.from_arrow(table, first_row=chunk.first_row)
        chunk.tables = []  # the matrix is all the model needs; the text is read again later
        chunk.predictions = pool.submit(_predict, self.model, self.plan, data, chunk.first_row,
                                        chunk.rows)
        return chunk

    def _write(self, chunk: _Chunk) -> None:
        import pyarrow as pa

        assert chunk.predictions is not None
        predictions = chunk.predictions.result()
        columns = [pa.array(c) for c in (
            [predictions] if predictions.ndim == 1 else list(predictions.T))]
        names = _prediction_names(self.header, len(columns))
        if self.rows_written == 0:
            self.sink.write(_output_header(self.header_line, names))
        start = 0
        for block in chunk.blocks:
            text = os.pread(self.source.fileno(), block.length, block.offset)
            if block.add_newline:
                text += b"\n"
            mine = [c.slice(start, block.rows) for c in columns]
            output = _append_to_lines(text, mine, block.rows)
            if output is None:
                output = _rewritten(self._parse(text, 0), mine, names)
            self.sink.write(output)
            start += block.rows
            self.rows_written += block.rows
        if self.progress is not None:
            self.progress(self.rows_written)


def _blocks(source: BinaryIO, start: int) -> Iterator[tuple[_Block, bytes]]:
    """The rest of the file in blocks of whole lines, with where each sits in the file."""
    carry, offset = b"", start
    while chunk := source.read(BLOCK_BYTES):
        cut = chunk.rfind(b"\n") + 1
        if cut == 0:  # a line longer than a block
            carry += chunk
            continue
        view = memoryview(chunk)
        text = carry + view[:cut]
        yield _Block(offset, len(text), 0), text
        offset += len(text)
        carry = bytes(view[cut:])
    if carry.strip():
        yield _Block(offset, len(carry), 0, add_newline=True), carry + b"\n"


def _predict(model: LoadedModel, plan: InputPlan, data: Any, first_row: int,
             rows: int) -> np.ndarray:
    try:
        predictions = model.predict(plan.to_model(data))
    except Exception as exc:
        raise ControlCentreError(
            f"the model failed on rows {first_row}-{first_row + rows - 1}: "
            f"{type(exc).__name__}: {exc}") from exc
    if len(predictions) != rows:
        raise ControlCentreError(f"the model returned {len(predictions)} predictions for "
                                 f"{rows} rows")
    return predictions


def _append_to_lines(block: bytes, predictions: list[pa.Array],
                     rows: int) -> pa.Buffer | None:
    """Each input line with ``,<prediction>`` appended, or None when that cannot be done
    safely: lines and rows not one to one (blank lines, a quoted value holding a line break),
    Windows line ends, or a prediction needing CSV quotes.

    The lines are joined element-wise with the predictions, each prediction carrying the line's
    newline; the result's data buffer, the elements end to end, is then the output as it is."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if b"\r" in block:
        return None
    binary = pa.large_binary()
    texts = []
    for column in predictions:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            if pc.any(pc.match_substring_regex(column, r'[,"\r\n]')).as_py():
                return None
        elif not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
                  or pa.types.is_boolean(column.type)):
            return None
        texts.append(pc.cast(pc.cast(column, pa.large_string()), binary))
    whole = pa.LargeBinaryArray.from_buffers(binary, 1, [  # the block itself, not a copy
        None, pa.py_buffer(np.array([0, len(block)], np.int64)), pa.py_buffer(block)])
    lines = pc.split_pattern(whole, pattern="\n").flatten()
    if len(lines) != rows + 1:  # the block ends with a newline: one empty piece after it
        return None
    comma, empty = pa.scalar(b",", binary), pa.scalar(b"", binary)
    values = pc.binary_join_element_wise(*texts, comma)  # "p" or "p0,p1"
    ends = pc.binary_join_element_wise(values, empty, pa.scalar(b"\n", binary))  # "p\n"
    joined = pc.binary_join_element_wise(lines.slice(0, rows), ends, comma)
    offsets = np.frombuffer(joined.buffers()[1], np.int64, count=rows + 1,
                            offset=joined.offset * 8)
    start, end = int(offsets[0]), int(offsets[-1])
    return joined.buffers()[2].slice(start, end - start)


def _rewritten(table: pa.Table, predictions: list[pa.Array], names: list[str]) -> bytes:
    """The rows written again by pyarrow's CSV writer, predictions appended: slower, but right
    for any CSV."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    out = io.BytesIO()
    pacsv.write_csv(pa.table(list(table.columns) + predictions,
                             names=table.column_names + names),
                    out, pacsv.WriteOptions(include_header=False))
    return out.getvalue()


def _prediction_names(existing: list[str], count: int) -> list[str]:
    """``prediction`` (or ``prediction_0``...), with a leading underscore while the input has
    such a column already (scoring an earlier output again)."""
    base = PREDICTION
    while base in existing or (count > 1 and any(n.startswith(f"{base}_") for n in existing)):
        base = f"_{base}"
    return [base] if count == 1 else [f"{base}_{i}" for i in range(count)]


def _output_header(header_line: bytes, names: list[str]) -> bytes:
    line = header_line.rstrip(b"\r\n")
    return line + b"," + ",".join(names).encode() + b"\n"


def _one_thread_per_predict(model: LoadedModel) -> None:
    """The pool already keeps every core busy with one chunk each; an estimator fanning out
    its own threads on top would only contend with it."""
    if model.flavor == "sklearn" and hasattr(model.raw, "n_jobs"):
        model.raw.n_jobs = 1


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
