"""Issue 7's targets checked against a run's results, and the run as a markdown page."""

from __future__ import annotations

from typing import Any


def targets(r: dict[str, Any]) -> list[dict[str, Any]]:
    checked: list[dict[str, Any]] = []

    def add(name: str, required: str, measured: float | None, met: bool | None,
            unit: str = "") -> None:
        checked.append({"target": name, "required": required,
                     "measured": None if measured is None else f"{measured:g}{unit}",
                     "met": met})

    if "serving" in r:
        s = r["serving"]["summary"]
        ratio = s["ours"]["32"]["rps"] / s["mlflow"]["32"]["rps"]
        add("serving req/s at concurrency 32, ours / mlflow", ">= 20x", round(ratio, 1),
            ratio >= 20, "x")
        p99 = s["ours"]["8"]["p99_ms"]
        add("serving p99 at concurrency 8", "<= 50 ms", p99, p99 <= 50, " ms")
        bare = r["serving"]["bare_predict_ms"]
        floor = min(bare.values())
        ratio1 = s["ours"]["1"]["p50_ms"] / floor
        add("single-row p50 at concurrency 1 / bare predict of one row (the faster of "
            "DataFrame and matrix)", "<= 2x", round(ratio1, 2), ratio1 <= 2, "x")
    if "batch" in r:
        b = r["batch"]["summary"]
        for size, needed in (("1000000", 2), ("10000000", 3)):
            if size in b:
                speedup = b[size]["speedup"]
                add(f"batch {int(size):,} rows, mlflow time / ours", f">= {needed}x", speedup,
                    speedup >= needed, "x")
                peak = b[size]["ours"]["peak_rss_mb"]
                add(f"batch {int(size):,} rows, our peak memory", "<= 400 MB", peak,
                    peak <= 400, " MB")
        if "100000" in b:
            seconds = b["100000"]["ours"]["seconds"]
            add("batch 100,000 rows end to end", "<= 3 s", seconds, seconds <= 3, " s")
    if "logging" in r:
        given = r["logging"]["seconds"]["skops, requirements given"]
        add("mlflow.sklearn.log_model with requirements given (skops)", "<= 1 s", given,
            given <= 1, " s")
    if "training" in r:
        overhead = r["training"]["entrypoint_overhead_s"]
        add("shared training entrypoint over train.py", "<= 1 s", overhead, overhead <= 1, " s")
    if "control" in r:
        switch = r["control"]["switch_median_s"]
        add("control loop: deploy tag to the new version answering (switch), median",
            "<= 5 s", switch, switch <= 5, " s")
    if "lambda" in r:
        size = r["lambda"]["bundle_mb"]
        add("Lambda bundle, unzipped", "<= 10 MB", size, size <= 10, " MB")
        slowest = max(h["cpu_ms_median"] for h in r["lambda"]["handlers"].values())
        add("Lambda handler import on Python 3.12, slowest handler (CPU, median)", "<= 300 ms",
            slowest, slowest <= 300, " ms")
    return checked


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    versions = ", ".join(f"{k} {v}" for k, v in m["versions"].items())
    out = [
        "# Benchmark results", "",
        f"Command: `{r['command']}` (started {r['started']}, {r['duration_s']} s).", "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB RAM, {m['os']}, "
        f"Python {m['python']}; {versions}.", "",
        f"Load average at start {m['load_average_at_start']}, at end "
        f"{m.get('load_average_at_end')}: other work on the machine moves absolute figures, so "
        "only ratios taken within this run count. Figures are medians over the repetitions.",
        "", "## Targets (issue 7)", "",
        "| target | required | measured | met |", "|---|---|---|---|",
    ]
    for t in r["targets"]:
        met = {True: "yes", False: "**no**", None: "-"}[t["met"]]
        out.append(f"| {t['target']} | {t['required']} | {t['measured']} | {met} |")
    if "serving" in r:
        s = r["serving"]
        out += ["", "## Serving: one-row JSON requests, closed loop on keep-alive connections",
                "", f"{s['duration_s']} s per point after a warm-up, {s['reps']} repetitions, "
                "ours and MLflow's in turn. Ours: one worker per core; MLflow: its default "
                "(one uvicorn worker).", "",
                "| concurrency | ours req/s | mlflow req/s | ratio | ours p50 ms | mlflow p50 ms "
                "| ours p99 ms | mlflow p99 ms |", "|---|---|---|---|---|---|---|---|"]
        for c in s["summary"]["ours"]:
            o, t = s["summary"]["ours"][c], s["summary"]["mlflow"][c]
            out.append(f"| {c} | {o['rps']:g} | {t['rps']:g} | {o['rps'] / t['rps']:.1f}x "
                       f"| {o['p50_ms']:g} | {t['p50_ms']:g} | {o['p99_ms']:g} "
                       f"| {t['p99_ms']:g} |")
        bare = s["bare_predict_ms"]
        out += ["", f"Bare in-process `predict` of one row: {bare['dataframe']:g} ms with a "
                f"one-row DataFrame, {bare['matrix']:g} ms with a one-row matrix."]
    if "batch" in r:
        out += ["", "## Batch scoring of a CSV (20 doubles a row, full precision)", "",
                "Each run a fresh process, timed from start to exit; CPU is its user plus system "
                "time; peak memory is the kernel's maximum resident set size of the process; "
                "\"others\" is the share of the machine's CPU that other processes used during "
                "the runs (it slows a tool that needs both cores more than one that uses one).",
                "", "| rows | ours s | mlflow s | mlflow / ours | ours CPU s | mlflow CPU s "
                "| ours peak MB | mlflow peak MB | others |", "|---|---|---|---|---|---|---|---|---|"]
        for rows, b in r["batch"]["summary"].items():
            o, t = b["ours"], b["mlflow"]
            out.append(f"| {int(rows):,} | {o['seconds']:g} | {t['seconds']:g} | "
                       f"{b['speedup']:g}x | {o['cpu_seconds']:g} | {t['cpu_seconds']:g} | "
                       f"{o['peak_rss_mb']:g} | {t['peak_rss_mb']:g} | "
                       f"{o['others_busy']:.0%} / {t['others_busy']:.0%} |")
    if "stages" in r:
        st = r["stages"]["cpu_seconds"]
        out += ["", f"## Where batch time goes: CPU seconds per step for "
                f"{r['stages']['rows']:,} rows", "",
                "Each step alone, on one core, in one process (start-up not included).", "",
                "| tool | step | CPU s |", "|---|---|---|"]
        out += [f"| {tool} | {step} | {seconds:g} |" for tool, steps in st.items()
                for step, seconds in steps.items()]
    if "logging" in r:
        out += ["", "## Model logging (`mlflow.sklearn.log_model`, the benchmark forest)", "",
                "| variant | seconds |", "|---|---|"]
        out += [f"| {k} | {v:g} |" for k, v in r["logging"]["seconds"].items()]
    if "loading" in r:
        loading = r["loading"]
        out += ["", "## Model loading with our loader (no mlflow import)", "",
                "| format | file MB | fresh process, imports included, s | deserialising "
                "only, s |", "|---|---|---|---|"]
        out += [f"| {fmt} | {loading['file_mb'][fmt]:g} | {v['cold_s']:g} | "
                f"{v['deserialise_s']:g} |" for fmt, v in loading["seconds"].items()]
    if "training" in r:
        t = r["training"]
        out += ["", "## Training test-project (registering a version each time)", "",
                "| how | seconds |", "|---|---|"]
        out += [f"| {k} | {v:g} |" for k, v in t["seconds"].items()]
        out += ["", f"Entrypoint overhead over train.py: {t['entrypoint_overhead_s']:g} s; "
                f"`mlflow run`'s: {t['mlflow_run_overhead_s']:g} s."]
    if "control" in r:
        c = r["control"]
        out += ["", "## Control loop: `deploy` tag set in MLflow to the new version answering",
                "", "test-project on its local endpoint, through the real MLflow server, signed "
                "webhook, reconciler, download, smoke test and switch.", "",
                f"First deployment (the endpoint starts): {c['first_deployment_s']:g} s. "
                f"Switches between two versions of a serving endpoint: "
                f"{', '.join(f'{x:g}' for x in c['switch_s'])} s; median "
                f"{c['switch_median_s']:g} s."]
    if "lambda" in r:
        lam = r["lambda"]
        out += ["", "## Lambda cold start (CPython 3.12, the Lambda runtime's environment)", "",
                f"Bundle: {lam['bundle_mb']:g} MB unzipped. Handler module import, "
                f"{lam['reps']} fresh processes each:", "",
                "| handler | CPU ms, median | CPU ms, best | wall ms, best |", "|---|---|---|---|"]
        out += [f"| {m} | {h['cpu_ms_median']:g} | {h['cpu_ms_best']:g} | "
                f"{h['wall_ms_best']:g} |" for m, h in lam["handlers"].items()]
    out += ["", "## Commands", ""]
    for part in ("serving", "batch"):
        if part in r:
            out += [f"- {part}, {k}: `{v}`" for k, v in r[part]["commands"].items()]
    return "\n".join(out) + "\n"
