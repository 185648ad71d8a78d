"""The model contract: what a project folder must hold before anything trains it.

A project is an MLflow Project with a ``data.py`` whose ``get_data()`` takes no arguments and
returns ``(X, y)``. With ``TEST_ENV=True`` it returns a small test slice; validation calls it
that way, so checking a project is cheap, and the slice it returns is what deployments are
smoke-tested with.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import os
import sys
import traceback
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_control import mlproject, names, project_checks
from mlops_control.errors import ContractError, ContractProblems


@dataclass(frozen=True)
class ValidProject:
    """A project that honours the contract, with the test slice it returned."""

    name: str
    path: Path
    spec: mlproject.MLProject
    X_test: Any
    y_test: Any

    @property
    def test_rows(self) -> int:
        return _length(self.X_test)


def check_name(name: str) -> None:
    if not names.PROJECT_NAME_PATTERN.match(name):
        raise ContractError(
            name, "(folder name)",
            "project names use lowercase letters, digits and single hyphens, at most 48 "
            "characters, because they become model, endpoint and S3 prefix names",
        )


def validate(project_dir: Path, strict: bool = False,
             importable_here: bool = False) -> ValidProject:
    """Check ``project_dir`` against the contract; raise :class:`ContractError` naming the
    project, the file and the problem (:class:`ContractProblems` when there are several).

    ``strict`` (``mlops validate``) adds what a run would only show later: imports the
    declared environment does not install, and a registered name other than the project's;
    ``importable_here`` also checks every import resolves in this interpreter."""
    project_dir = Path(project_dir).resolve()
    name = project_dir.name
    if not project_dir.is_dir():
        raise ContractError(name, str(project_dir), "is not a folder")
    problems: list[ContractError] = []
    try:
        check_name(name)
    except ContractError as exc:
        problems.append(exc)
    spec, read_problems = mlproject.read(project_dir)
    problems += read_problems
    if spec is not None:
        problems += project_checks.script_problems(spec)
        if strict:
            problems += project_checks.code_problems(spec, importable_here)
    X = y = None
    try:
        get_data = _load_get_data(name, project_dir)
        X, y = _call_get_data(name, get_data, project_dir)
    except ContractError as exc:
        problems.append(exc)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ContractProblems(name, problems)
    assert spec is not None
    return ValidProject(name=name, path=project_dir, spec=spec, X_test=X, y_test=y)


def _load_get_data(project: str, project_dir: Path) -> Any:
    data_file = project_dir / "data.py"
    if not data_file.is_file():
        raise ContractError(project, "data.py", "is missing: add data.py with get_data()")
    module_name = f"_mlops_contract_{project.replace('-', '_')}_{uuid.uuid4().hex[:8]}"
    spec = importlib.util.spec_from_file_location(module_name, data_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    with _on_path(project_dir):
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise ContractError(
                project, "data.py", f"cannot be imported: {_describe(exc, data_file)}"
            ) from None
    get_data = getattr(module, "get_data", None)
    if get_data is None:
        raise ContractError(project, "data.py", "has no get_data() function")
    if not callable(get_data):
        raise ContractError(project, "data.py", "get_data is not a function")
    try:
        signature = inspect.signature(get_data)
    except (TypeError, ValueError):
        return get_data
    required = [
        p.name for p in signature.parameters.values()
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    if required:
        raise ContractError(
            project, "data.py",
            f"get_data() must take no arguments, but it requires {', '.join(required)}",
        )
    return get_data


def _call_get_data(project: str, get_data: Any, project_dir: Path) -> tuple[Any, Any]:
    with _on_path(project_dir), _env(names.ENV_TEST_ENV, "True"):
        try:
            result = get_data()
        except Exception as exc:
            raise ContractError(
                project, "data.py",
                f"get_data() raised {_describe(exc, project_dir / 'data.py')}",
            ) from None
    if not isinstance(result, tuple | list) or len(result) != 2:
        got = type(result).__name__
        if isinstance(result, tuple | list):
            got = f"a {got} of {len(result)} items"
        raise ContractError(
            project, "data.py", f"get_data() must return a pair (X, y), but returned {got}"
        )
    X, y = result
    try:
        x_rows, y_rows = _length(X), _length(y)
    except TypeError as exc:
        raise ContractError(project, "data.py", f"get_data() returned {exc}") from None
    if x_rows != y_rows:
        raise ContractError(
            project, "data.py",
            f"get_data() returned X with {x_rows} rows but y with {y_rows}; they must match",
        )
    if x_rows == 0:
        raise ContractError(project, "data.py", "get_data() returned no rows")
    return X, y


def _length(value: Any) -> int:
    shape = getattr(value, "shape", None)
    if shape is not None and len(shape) > 0:
        return int(shape[0])
    try:
        return len(value)
    except TypeError:
        raise TypeError(f"a {type(value).__name__}, which has no length") from None


def _describe(exc: BaseException, data_file: Path) -> str:
    """``ValueError: message (data.py line 12)``: the innermost frame in the project's file."""
    where = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if Path(frame.filename).resolve() == data_file.resolve():
            where = f" (data.py line {frame.lineno})"
            break
    if isinstance(exc, SyntaxError) and exc.lineno:
        where = f" (data.py line {exc.lineno})"
    return f"{type(exc).__name__}: {exc}{where}"


@contextlib.contextmanager
def _on_path(folder: Path) -> Iterator[None]:
    sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.path.remove(str(folder))


@contextlib.contextmanager
def _env(key: str, value: str) -> Iterator[None]:
    old = os.environ.get(key)
    os.environ[key] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old
