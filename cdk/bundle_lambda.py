"""Build the Lambda bundle in ``build/lambda`` without Docker (``make lambda-bundle``).

Why a make step rather than CDK's bundling: pip runs once per change of its inputs (a stamp
holds their hash), not on every synth or test session, and the result is a plain folder that
the tests measure and import on Python 3.12 before CDK ever zips it.

- third-party code from requirements-lambda.txt, as manylinux2014_x86_64 CPython 3.12 wheels
  (``--only-binary=:all:`` so nothing is compiled for this machine by mistake);
- ``lambdas/`` and the standard-library-only subset of ``mlops_control`` the handlers use.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "build" / "lambda"
REQUIREMENTS = REPO / "requirements-lambda.txt"
PYTHON_VERSION = "3.12"
PLATFORM = "manylinux2014_x86_64"
RUNTIME_STANDIN = REPO / "build" / "lambda-runtime"
"""What the Lambda Python 3.12 runtime provides besides the standard library: boto3 and its
dependencies, pinned like ours. Only the import checks put it on the path."""
RUNTIME_REQUIREMENTS = ["boto3==1.44.8", "botocore==1.44.8"]
PY312 = Path(os.environ.get("MLOPS_PYTHON312",
                            Path.home() / ".pyenv" / "versions" / "3.12.1" / "bin" / "python"))
HANDLER_MODULES = ["lambdas.webhook", "lambdas.data_trigger", "lambdas.reconciler",
                   "lambdas.deploy_steps", "lambdas.capture_stats"]
MLOPS_MODULES = [
    "__init__.py", "names.py", "events.py", "errors.py", "registry.py",
    "steps/__init__.py", "steps/apply.py", "steps/plan.py", "steps/status.py",
    "steps/reconcile.py", "steps/backend.py",
    "backends/__init__.py", "backends/sagemaker.py",
    "dashboards/__init__.py", "dashboards/cloudwatch.py",
    "monitoring/__init__.py", "monitoring/stats.py", "monitoring/catalogue.py",
    "monitoring/definition.py", "monitoring/capture.py", "monitoring/publish.py",
    "monitoring/reference.py",
]
# Never imported by the handlers; dropping them keeps the bundle under 10 MB (the import test
# in tests/lambdas proves every handler still imports from the bundle alone).
PRUNE = ["**/__pycache__", "**/*.pyc", "**/tests", "bin", "wrapt/*.c", "pydantic/v1",
         "aws_lambda_powertools/event_handler",
         *(f"aws_lambda_powertools/utilities/{unused}" for unused in (
             "data_classes", "auth_alpha", "idempotency", "kafka", "circuit_breaker",
             "feature_flags", "data_masking", "streaming", "batch", "validation"))]


def inputs() -> list[Path]:
    own = sorted((REPO / "lambdas").rglob("*.py"))
    src = [REPO / "src" / "mlops_control" / m for m in MLOPS_MODULES]
    return [REQUIREMENTS, Path(__file__), *own, *src]


def digest() -> str:
    h = hashlib.sha256()
    for path in inputs():
        h.update(str(path.relative_to(REPO)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def build(out: Path = OUT, force: bool = False) -> Path:
    stamp = out / ".bundle-digest"
    wanted = digest()
    if not force and stamp.is_file() and stamp.read_text() == wanted:
        return out
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    pip_target(out, ["--no-deps", "-r", str(REQUIREMENTS)])
    shutil.copytree(REPO / "lambdas", out / "lambdas",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for module in MLOPS_MODULES:
        target = out / "mlops_control" / module
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / "src" / "mlops_control" / module, target)
    for pattern in PRUNE:
        for path in list(out.glob(pattern)):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()
    build_runtime_standin()
    compile_imported(out)
    stamp.write_text(wanted)
    return out


def pip_target(target: Path, requirements: list[str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-compile", "--only-binary=:all:", "--platform", PLATFORM, "--implementation", "cp",
         "--python-version", PYTHON_VERSION, "--target", str(target), *requirements],
        check=True)


def build_runtime_standin() -> Path:
    marker = RUNTIME_STANDIN / ".requirements"
    if marker.is_file() and marker.read_text() == "\n".join(RUNTIME_REQUIREMENTS):
        return RUNTIME_STANDIN
    if RUNTIME_STANDIN.exists():
        shutil.rmtree(RUNTIME_STANDIN)
    pip_target(RUNTIME_STANDIN, RUNTIME_REQUIREMENTS)
    # The runtime's boto3 comes with bytecode; so does the stand-in, or every import check
    # would charge us for compiling botocore.
    subprocess.run([str(PY312), "-I", "-m", "compileall", "-q", "-j", "0",
                    str(RUNTIME_STANDIN)], check=True)
    marker.write_text("\n".join(RUNTIME_REQUIREMENTS))
    return RUNTIME_STANDIN


def isolated_python(bundle: Path, code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` on CPython 3.12 with nothing but the bundle and the runtime stand-in on
    the path: ``-I`` ignores PYTHON* variables and the user site, ``-S`` skips site-packages."""
    if not PY312.is_file():
        raise FileNotFoundError(f"no Python 3.12 at {PY312}; set MLOPS_PYTHON312")
    prelude = (f"import sys; sys.path[:] = [{str(bundle)!r}, {str(RUNTIME_STANDIN)!r}] + "
               "[p for p in sys.path if p.endswith(('.zip', 'lib/python3.12', 'lib-dynload'))]\n")
    return subprocess.run([str(PY312), "-I", "-S", "-B", "-c", prelude + code],
                          capture_output=True, text=True, check=False, cwd=bundle)


def compile_imported(out: Path) -> None:
    """Ship bytecode for exactly the modules a cold start imports: /var/task is read-only, so
    without it every cold start compiles them again (~300 ms on a small machine).

    Our own modules keep their source beside an unchecked-hash pyc (valid whatever mtimes the
    zip gives them). Third-party modules become sourceless pycs (the source is dropped), which
    keeps the bundle under 10 MB; their tracebacks still name file and line."""
    listing = isolated_python(out, (
        "import importlib\n"
        f"for m in {HANDLER_MODULES!r}: importlib.import_module(m)\n"
        "print('\\n'.join(sorted({getattr(m, '__file__', None) or '' for m in "
        "list(sys.modules.values())})))\n"))
    if listing.returncode != 0:
        raise RuntimeError(f"the handlers do not import from the bundle:\n{listing.stderr}")
    files = [Path(f) for f in listing.stdout.split()
             if f.startswith(str(out) + os.sep) and f.endswith(".py")]
    own = [f for f in files if f.relative_to(out).parts[0] in ("lambdas", "mlops_control")]
    third_party = [f for f in files if f not in own]
    code = ("import py_compile, sys\n"
            "mode = py_compile.PycInvalidationMode.UNCHECKED_HASH\n"
            "split = sys.argv.index('--')\n"
            "for f in sys.argv[1:split]: py_compile.compile(f, doraise=True, "
            "invalidation_mode=mode)\n"
            "for f in sys.argv[split + 1:]: py_compile.compile(f, cfile=f + 'c', "
            "doraise=True, invalidation_mode=mode)\n")
    subprocess.run([str(PY312), "-I", "-c", code, *map(str, own), "--",
                    *map(str, third_party)], check=True)
    for source in third_party:
        source.unlink()
    strip = shutil.which("strip")
    if strip:
        # wheels sometimes ship debug symbols (wrapt does): useless in a Lambda, and large.
        for library in out.rglob("*.so"):
            subprocess.run([strip, "--strip-debug", str(library)], check=True)


def size_bytes(folder: Path = OUT) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="rebuild even if up to date")
    args = parser.parse_args()
    out = build(force=args.force)
    print(f"lambda bundle: {out.relative_to(REPO)} ({size_bytes(out) / 1e6:.2f} MB unzipped)")


if __name__ == "__main__":
    main()


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
