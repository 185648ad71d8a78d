"""Where batch scoring's time goes: the CPU seconds of each step of both tools, for 1M rows,
each measured alone on one core in this process, warm (the second of two runs: in a pipeline
the memory a step needs has been touched before). This is the profile behind the batch
ratios: the same scikit-learn predict dominates both tools."""

from __future__ import annotations

import io
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks import fixtures
from benchmarks.common import note


def _cpu(step: Callable[[], Any]) -> tuple[Any, float]:
    step()
    started = time.process_time()
    result = step()
    return result, round(time.process_time() - started, 3)


def run(model_dir: Path, rows: int = 1_000_000) -> dict[str, Any]:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from mlops_control import batch, csv_input
    from mlops_control.model_loader import load_model
    from mlops_control.schema import InputPlan

    warnings.simplefilter("ignore")
    source = fixtures.csv(rows)
    model = load_model(model_dir)
    model.raw.n_jobs = 1
    costs: dict[str, dict[str, float]] = {"mlflow": {}, "ours": {}}

    # MLflow's steps (mlflow.pyfunc.scoring_server._predict), without its start-up.
    import mlflow.pyfunc
    from mlflow.models.utils import _enforce_schema
    from mlflow.pyfunc.scoring_server import parse_csv_input, predictions_to_json

    schema = mlflow.pyfunc.load_model(str(model_dir)).metadata.get_input_schema()
    frame, costs["mlflow"]["parse CSV (pandas)"] = _cpu(lambda: parse_csv_input(str(source),
                                                                                schema))
    checked, costs["mlflow"]["schema checks"] = _cpu(lambda: _enforce_schema(frame, schema))
    predictions, costs["mlflow"]["predict (one call)"] = _cpu(lambda: model.raw.predict(checked))
    _, costs["mlflow"]["write JSON predictions"] = _cpu(
        lambda: predictions_to_json(predictions, io.StringIO()))

    # Ours (mlops_control.batch), step by step.
    plan = InputPlan(model)
    with open(source, "rb") as handle:
        header_line = handle.readline()
    header = csv_input.header_of(header_line)

    def read_blocks() -> list[bytes]:
        with open(source, "rb") as handle:
            handle.seek(len(header_line))
            return [text for _, text in batch._blocks(handle, len(header_line))]

    blocks, costs["ours"]["read blocks"] = _cpu(read_blocks)
    read, convert = csv_input.options(plan, header, model_columns_only=False, headerless=True)
    tables, costs["ours"]["parse CSV (pyarrow)"] = _cpu(lambda: [
        pacsv.read_csv(io.BytesIO(b), read_options=read, convert_options=convert)
        for b in blocks])
    table = pa.concat_tables(tables)
    matrix, costs["ours"]["to matrix"] = _cpu(lambda: plan.from_arrow(table))
    chunk = batch.CHUNK_ROWS
    predicted, costs["ours"][f"predict ({chunk:,}-row calls)"] = _cpu(lambda: np.concatenate([
        model.predict(matrix[i:i + chunk]) for i in range(0, len(matrix), chunk)]))
    offsets = np.cumsum([0] + [t.num_rows for t in tables])
    _, costs["ours"]["append predictions to lines"] = _cpu(lambda: [
        batch._append_to_lines(b, [pa.array(predicted[offsets[i]:offsets[i + 1]])],
                               tables[i].num_rows) for i, b in enumerate(blocks)])
    for tool in costs:
        costs[tool]["total"] = round(sum(costs[tool].values()), 3)
    note(f"stages (CPU s for {rows:,} rows): {costs}")
    return {"rows": rows, "cpu_seconds": costs}
