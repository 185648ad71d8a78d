"""The Lambda bundle as the runtime sees it: size, imports on CPython 3.12 with nothing but
the bundle (and the runtime's boto3) on the path, what each handler imports. How long the
imports take is measured by ``make bench`` (benchmarks/bench_lambda.py), not asserted here."""

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
        capture_output=True, text=True, cwd=bundle, env=bundle_lambda.LAMBDA_RUNTIME_ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "BoundFunctionWrapper"]
