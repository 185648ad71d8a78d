"""Batch scoring: ours (``score_csv``, what ``mlops batch`` runs) and `mlflow models predict`
on the same CSV and model folder, in turn, each a fresh process timed from start to exit with
its peak memory."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from benchmarks import fixtures
from benchmarks.common import PYTHON, WORK, measure, median, note, settle

OURS = ("import sys; from mlops_control.batch import score_csv; "
        "score_csv(sys.argv[1], sys.argv[2], sys.argv[3])")


def commands(model_dir: Path, source: Path) -> dict[str, tuple[list[str], Path]]:
    ours_out, mlflow_out = WORK / "out-ours.csv", WORK / "out-mlflow.json"
    return {
        "ours": ([PYTHON, "-c", OURS, str(model_dir), str(source), str(ours_out)], ours_out),
        "mlflow": ([PYTHON, "-m", "mlflow", "models", "predict", "-m", str(model_dir), "-i",
                    str(source), "-t", "csv", "-o", str(mlflow_out), "--env-manager", "local"],
                   mlflow_out),
    }


def run(model_dir: Path, plan: dict[int, int], settle_s: float) -> dict[str, Any]:
    """``plan``: rows -> repetitions; ``settle_s``: longest wait for an idle machine before
    each run."""
    runs: list[dict[str, Any]] = []
    for rows, reps in plan.items():
        source = fixtures.csv(rows)
        tools = commands(model_dir, source)
        for rep in range(reps):
            order = ["ours", "mlflow"] if rep % 2 == 0 else ["mlflow", "ours"]
            for name in order:
                argv, output = tools[name]
                settle(settle_s)
                result = measure(argv)
                output.unlink(missing_ok=True)
                note(f"batch {rows:,} rows rep {rep} {name}: {result.seconds} s "
                     f"(cpu {result.cpu_seconds} s), peak {result.peak_rss_mb} MB, "
                     f"others busy {result.others_busy:.0%}")
                runs.append({"tool": name, "rows": rows, "rep": rep,
                             "seconds": result.seconds, "cpu_seconds": result.cpu_seconds,
                             "peak_rss_mb": result.peak_rss_mb,
                             "others_busy": result.others_busy})
    summary: dict[str, Any] = {}
    for rows in plan:
        summary[str(rows)] = {}
        for name in ("ours", "mlflow"):
            mine = [r for r in runs if r["tool"] == name and r["rows"] == rows]
            summary[str(rows)][name] = {
                "seconds": median([r["seconds"] for r in mine]),
                "cpu_seconds": median([r["cpu_seconds"] for r in mine]),
                "peak_rss_mb": max(r["peak_rss_mb"] for r in mine),
                "others_busy": median([r["others_busy"] for r in mine])}
        ours, theirs = summary[str(rows)]["ours"], summary[str(rows)]["mlflow"]
        summary[str(rows)]["speedup"] = round(theirs["seconds"] / ours["seconds"], 2)
    example = commands(Path("<model>"), Path("<rows>.csv"))
    return {"commands": {k: "python " + " ".join(v[0][1:]).replace(str(WORK), "benchmarks/work")
                         for k, v in example.items()},
            "summary": summary, "runs": runs}
