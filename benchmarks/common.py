"""What every benchmark needs: paths, the machine's description, timed subprocesses with their
peak memory, servers started and always stopped, medians."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_control import procs

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "benchmarks" / "work"
"""Generated data, models and scratch output (git-ignored; data is reused between runs)."""
RESULTS = REPO / "benchmarks" / "results"
PYTHON = sys.executable
LAUNCH = Path(__file__).resolve().parent / "launch.py"


def env(**extra: str) -> dict[str, str]:
    """The environment for tools under test: this venv's tools on PATH (``mlflow models
    serve`` starts ``uvicorn`` by name), and MLflow 3.17's opt-in to load models at all."""
    base = dict(os.environ)
    base["PATH"] = f"{Path(PYTHON).parent}{os.pathsep}{base.get('PATH', '')}"
    base["MLFLOW_ALLOW_PICKLE_DESERIALIZATION"] = "true"
    base["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), base.get("PYTHONPATH")) if p)
    base.update(extra)
    return base


@dataclass
class Measured:
    seconds: float
    cpu_seconds: float
    """User plus system time of the process: what it cost, whatever else the machine did."""
    peak_rss_mb: float
    others_busy: float
    """Share of the machine's CPU capacity used by other processes while this one ran."""
    returncode: int
    output: str


def busy_jiffies() -> tuple[float, float]:
    """(busy, total) CPU time of the whole machine so far, in seconds, from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    ticks = os.sysconf("SC_CLK_TCK")
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / ticks, sum(fields) / ticks


def measure(argv: Sequence[str], cwd: Path | None = None, extra_env: dict[str, str] | None = None,
            timeout: float = 1800) -> Measured:
    """Run a command; its wall time, CPU time and the kernel's record of its peak resident
    memory (``wait4``'s ru_maxrss: exact, not sampled), as taken by ``launch.py`` (which says
    why the benchmark process cannot take them itself)."""
    log = WORK / "last-command.log"
    report = WORK / "last-command.json"
    log.parent.mkdir(parents=True, exist_ok=True)
    report.unlink(missing_ok=True)
    with open(log, "w+b") as out:
        busy_before, total_before = busy_jiffies()
        proc = subprocess.Popen([PYTHON, "-S", str(LAUNCH), str(report), *map(str, argv)],
                                cwd=cwd, env=env(**(extra_env or {})), stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            procs.stop_group(proc.pid, timeout=5)
            raise TimeoutError(f"{list(argv)[:4]} took over {timeout:.0f}s") from None
        busy_after, total_after = busy_jiffies()
        out.seek(0)
        text = out.read().decode(errors="replace")
    if proc.returncode != 0 or not report.is_file():
        raise RuntimeError(f"the launcher failed ({proc.returncode}) for "
                           f"{' '.join(map(str, argv[:6]))}:\n{text[-3000:]}")
    taken = json.loads(report.read_text())
    if taken["returncode"] != 0:
        raise RuntimeError(f"{' '.join(map(str, argv[:6]))} failed ({taken['returncode']}):\n"
                           f"{text[-3000:]}")
    cpu = taken["cpu_seconds"]
    others = max(0.0, (busy_after - busy_before) - cpu) / max(total_after - total_before, 1e-9)
    return Measured(round(taken["seconds"], 3), round(cpu, 3),
                    round(taken["peak_rss_kb"] / 1024, 1), round(others, 2),
                    taken["returncode"], text)


def settle(max_wait: float, threshold: float = 0.15) -> float:
    """Wait (at most ``max_wait`` seconds) for the machine to be idle, so that ours and
    MLflow's runs start on equal terms when other work shares the machine; return how busy it
    was at the end (0..1)."""
    if max_wait <= 0:
        return float("nan")
    deadline = time.monotonic() + max_wait
    while True:
        before, total_before = busy_jiffies()
        time.sleep(1.0)
        after, total_after = busy_jiffies()
        busy = (after - before) / max(total_after - total_before, 1e-9)
        if busy < threshold or time.monotonic() >= deadline:
            return round(busy, 2)


@contextlib.contextmanager
def server(argv: Sequence[str], port: int, log: Path, ready_path: str = "/ping",
           timeout: float = 180) -> Iterator[subprocess.Popen[bytes]]:
    """A server process for the duration of the block, stopped by its pid (and its process
    group) whatever happens."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(list(argv), env=env(), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=REPO)
    try:
        procs.wait_http(f"http://127.0.0.1:{port}{ready_path}", timeout,
                        alive=lambda: proc.poll() is None, what=argv[2] if len(argv) > 2 else "")
        yield proc
    finally:
        procs.stop_group(proc.pid, timeout=20)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


def median(values: Sequence[float]) -> float:
    return round(statistics.median(values), 3) if values else float("nan")


def machine() -> dict[str, Any]:
    import importlib.metadata as md

    import psutil

    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package in ("mlflow", "scikit-learn", "skops", "pandas", "numpy", "pyarrow", "uvicorn",
                    "httptools", "orjson"):
        with contextlib.suppress(md.PackageNotFoundError):
            versions[package] = md.version(package)
    return {
        "cpu": cpu, "cores": len(os.sched_getaffinity(0)),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(), "versions": versions,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def note(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
