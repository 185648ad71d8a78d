"""Lambda cold start: each bundle's size, and each handler module's import on the Lambda
runtime's Python (3.12), in the environment the runtime sets, with nothing but the bundle (and
the runtime's boto3) on the path. Issue 7's budget: 10 MB unzipped, 300 ms per import.

CPU time of the import is what is compared with the budget: on a shared two-core machine the
wall clock of the same import varies twofold with what other processes run. ``-X importtime``
gives the wall-clock profile beside it.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "cdk"))
import bundle_lambda  # noqa: E402


def measure_import(bundle: Path, module: str) -> tuple[float, dict[str, int]]:
    """One cold import on 3.12 in the Lambda runtime's environment (nothing else of ours):
    the CPU milliseconds the import took (``time.process_time``), and ``-X importtime``'s
    cumulative microseconds per module (wall clock) for the profile."""
    code = (f"import sys, time; sys.path[:0] = [{str(bundle)!r}, "
            f"{str(bundle_lambda.RUNTIME_STANDIN)!r}]\n"
            "started = time.process_time()\n"
            f"import {module}\n"
            "print((time.process_time() - started) * 1000)\n")
    result = subprocess.run(
        [str(bundle_lambda.PY312), "-I", "-S", "-B", "-X", "importtime", "-c", code],
        capture_output=True, text=True, check=True, cwd=bundle, env=bundle_lambda.LAMBDA_RUNTIME_ENV)
    times: dict[str, int] = {}
    for line in result.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = (part.strip() for part in line.split("|"))
            if cumulative.isdigit():
                times[name.strip()] = int(cumulative)
    return float(result.stdout.strip()), times


PROFILED = ("aws_lambda_powertools.utilities.parser", "aws_lambda_powertools.metrics",
            "aws_xray_sdk.core", "botocore.client", "pydantic", "lambdas.common.adapters",
            "mlops_control.backends.sagemaker")


def run(reps: int = 5) -> dict[str, Any]:
    bundle = bundle_lambda.build()
    handlers: dict[str, Any] = {}
    for module in bundle_lambda.HANDLER_MODULES:
        runs = [measure_import(bundle, module) for _ in range(reps)]
        cpu = [ms for ms, _ in runs]
        best = min(runs, key=lambda run: run[0])[1]
        handlers[module] = {
            "cpu_ms_median": round(statistics.median(cpu), 1),
            "cpu_ms_best": round(min(cpu), 1),
            "wall_ms_best": round(best.get(module, 0) / 1000, 1),
            "profile_ms": {name: round(best[name] / 1000, 1) for name in PROFILED
                           if name in best},
        }
    return {"bundle_mb": round(bundle_lambda.size_bytes(bundle) / 2**20, 2),
            "reps": reps, "handlers": handlers}


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
