"""``make bench`` (``python -m benchmarks.run``): ours against MLflow's own tools, side by
side in one run, interleaved and repeated; results as JSON and a markdown table under
benchmarks/results/. ``--quick`` (``make bench QUICK=1``) is a smaller run for a quick look."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from benchmarks import (
    bench_batch,
    bench_control_loop,
    bench_lambda,
    bench_models,
    bench_serving,
    bench_stages,
    bench_training,
    fixtures,
    report,
)
from benchmarks.common import RESULTS, WORK, machine, note


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, batch on 100k rows only (the 1M and 10M targets need the full run)")
    every = ("serving", "batch", "stages", "models", "training", "control", "lambda")
    parser.add_argument("--only", choices=every, action="append",
                        help="run only these parts (repeatable)")
    args = parser.parse_args()
    parts = set(args.only or every)
    if args.quick and not args.only:
        parts.discard("stages")
    quick = args.quick
    started = time.perf_counter()
    WORK.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "command": "make bench" + (" QUICK=1" if quick else "") if not args.only
        else " ".join(["python -m benchmarks.run", *sys.argv[1:]]),
        "quick": quick, "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "machine": machine(),
    }
    models = fixtures.models()
    if "serving" in parts:
        results["serving"] = bench_serving.run(
            models["skops"], reps=1 if quick else 3, duration=2.0 if quick else 5.0,
            warmup=0.5 if quick else 1.0, settle_s=0.0 if quick else 5.0)
    if "batch" in parts:
        # Quick: no 1M file to write on a fresh clone, and under two minutes here.
        plan = {100_000: 1} if quick else {
            100_000: 3, 1_000_000: 3, 10_000_000: 1}
        results["batch"] = bench_batch.run(models["skops"], plan,
                                           settle_s=0.0 if quick else 20.0)
    if "stages" in parts:
        results["stages"] = bench_stages.run(models["skops"])
    if "models" in parts:
        results["logging"] = bench_models.logging(models["skops"], reps=1 if quick else 3)
        results["loading"] = bench_models.loading(models, reps=1 if quick else 3)
    if "training" in parts:
        results["training"] = bench_training.run(reps=1 if quick else 3)
    if "control" in parts:
        results["control"] = bench_control_loop.run(switches=2 if quick else 8)
    if "lambda" in parts:
        results["lambda"] = bench_lambda.run(reps=2 if quick else 5)
    results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["duration_s"] = round(time.perf_counter() - started, 1)
    results["targets"] = report.targets(results)
    stem = "results-quick" if quick else "results"
    folder = RESULTS
    if args.only:  # a partial run is for a look, not for the committed record
        stem, folder = stem + "-" + "-".join(sorted(parts)), WORK
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    (folder / f"{stem}.md").write_text(report.markdown(results))
    note(f"done in {results['duration_s']} s: {folder / stem}.md")
    print(report.markdown(results))


if __name__ == "__main__":
    main()
