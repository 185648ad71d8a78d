"""The Lambda bundle as the runtime sees it: size, imports on CPython 3.12 with nothing but
the bundle (and the runtime's boto3) on the path, what each handler imports, how long."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "cdk"))
import bundle_lambda  # noqa: E402

FORBIDDEN = ("mlflow", "pandas", "sklearn", "numpy", "yaml", "pyarrow", "scipy")
HANDLERS = bundle_lambda.HANDLER_MODULES
MAX_BYTES = 10 * 1024 * 1024
IMPORT_BUDGET_MS = 300


@pytest.fixture(scope="module")
def bundle() -> Path:
    return bundle_lambda.build()


def test_the_bundle_is_under_ten_megabytes_unzipped(bundle):
    assert bundle_lambda.size_bytes(bundle) <= MAX_BYTES


def test_the_bundle_holds_no_boto3_since_the_runtime_provides_it(bundle):
    assert not (bundle / "boto3").exists() and not (bundle / "botocore").exists()


@pytest.mark.parametrize("module", HANDLERS)
def test_each_handler_imports_on_python_312_from_the_bundle_alone(bundle, module):
    # -I -S: no site-packages, no PYTHONPATH; the path is the bundle and the boto3 stand-in.
    result = bundle_lambda.isolated_python(bundle, (
        f"import {module}\n"
        "import sys\n"
        "assert sys.version_info[:2] == (3, 12), sys.version\n"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "outside = sorted({m.__file__ for m in list(sys.modules.values()) if getattr(m, "
        "'__file__', None) and 'site-packages' in m.__file__})\n"
        "print(bad, outside)\n"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[] []"


@pytest.mark.parametrize("module", HANDLERS)
def test_no_handler_pulls_in_mlflow_pandas_sklearn_numpy_or_yaml(module):
    """In this virtualenv all of those are installed: the handler must still not import them."""
    code = (f"import sys, {module}\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


LAMBDA_RUNTIME_ENV = {
    # What the Lambda runtime sets before it imports a handler ("Defined runtime environment
    # variables" in the Lambda documentation), with Active tracing on, plus what the CDK
    # factory sets for every function. The X-Ray SDK behaves differently inside Lambda
    # (LAMBDA_TASK_ROOT): a local sampler, and no botocore client for centralized sampling.
    "LAMBDA_TASK_ROOT": "/var/task", "LAMBDA_RUNTIME_DIR": "/var/runtime",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.12", "AWS_LAMBDA_FUNCTION_NAME": "import-check",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
    "AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR", "AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129:2000",
    "_AWS_XRAY_DAEMON_ADDRESS": "169.254.79.129", "_AWS_XRAY_DAEMON_PORT": "2000",
    "TZ": ":UTC", "LANG": "en_US.UTF-8", "PATH": "/usr/local/bin:/usr/bin:/bin",
    "POWERTOOLS_SERVICE_NAME": "import-check", "POWERTOOLS_METRICS_NAMESPACE": "MLOpsControl",
    "LOG_LEVEL": "INFO",
}


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
        capture_output=True, text=True, check=True, cwd=bundle, env=LAMBDA_RUNTIME_ENV)
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


@pytest.mark.parametrize("module", HANDLERS)
def test_handler_import_fits_the_budget_in_the_lambda_runtimes_environment(bundle, module):
    """The whole import, X-Ray included, nothing subtracted; best of three.

    Asserted on CPU time: on this shared two-core machine the wall clock of the same import
    varies twofold with what other processes run, while the CPU time is the import's own
    work. The ``-X importtime`` profile (wall clock) of the best run is printed beside it."""
    runs = [measure_import(bundle, module) for _ in range(3)]
    cpu_ms, profile = min(runs, key=lambda run: run[0])
    parts = ", ".join(f"{name} {profile[name] / 1000:.0f}" for name in PROFILED
                      if name in profile)
    print(f"{module}: {cpu_ms:.0f} ms CPU; -X importtime {profile[module] / 1000:.0f} ms wall "
          f"(cumulative, overlapping: {parts})")
    assert cpu_ms <= IMPORT_BUDGET_MS


@pytest.mark.parametrize("module", HANDLERS)
def test_aws_calls_are_still_traced_though_botocore_is_patched_on_first_use(bundle, module):
    """X-Ray patches botocore when the first client is made (adapters.trace_aws_calls), not at
    import: the import no longer loads botocore.client, and AWS calls are still recorded."""
    result = subprocess.run(
        [str(bundle_lambda.PY312), "-I", "-S", "-B", "-c",
         f"import sys; sys.path[:0] = [{str(bundle)!r}, {str(bundle_lambda.RUNTIME_STANDIN)!r}]\n"
         f"import {module}\n"
         "print('botocore.client' in sys.modules)\n"
         "from lambdas.common import adapters\n"
         "adapters.client('stepfunctions')\n"
         "import botocore.client\n"
         "print(type(botocore.client.BaseClient._make_api_call).__name__)\n"],
        capture_output=True, text=True, cwd=bundle, env=LAMBDA_RUNTIME_ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "BoundFunctionWrapper"]
