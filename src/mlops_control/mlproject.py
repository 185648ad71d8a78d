"""Reading and checking an MLflow Project's ``MLproject`` file, without importing mlflow."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlops_control.errors import ContractError

PARAMETER_TYPES = {"string", "float", "int", "path", "uri"}
ENV_KEYS = ("python_env", "conda_env", "docker_env")


@dataclass(frozen=True)
class Parameter:
    name: str
    type: str
    default: Any = None

    def convert(self, value: Any) -> Any:
        """Check ``value`` against the declared type, as ``mlflow run`` does."""
        if self.type == "int":
            try:
                return int(str(value))
            except ValueError:
                raise ValueError(f"parameter {self.name!r} must be an int, got {value!r}") from None
        if self.type == "float":
            try:
                return float(str(value))
            except ValueError:
                raise ValueError(
                    f"parameter {self.name!r} must be a float, got {value!r}"
                ) from None
        return str(value)


@dataclass(frozen=True)
class EntryPoint:
    name: str
    command: str
    parameters: dict[str, Parameter] = field(default_factory=dict)

    def resolve(self, given: dict[str, Any]) -> dict[str, Any]:
        """Typed values for every parameter: the given ones, else the defaults."""
        unknown = sorted(set(given) - set(self.parameters))
        if unknown:
            raise ValueError(
                f"entry point {self.name!r} has no parameter {', '.join(map(repr, unknown))}; "
                f"it takes {', '.join(sorted(self.parameters)) or 'none'}"
            )
        values: dict[str, Any] = {}
        for name, parameter in self.parameters.items():
            if name in given:
                values[name] = parameter.convert(given[name])
            elif parameter.default is not None:
                values[name] = parameter.convert(parameter.default)
            else:
                raise ValueError(f"parameter {name!r} of entry point {self.name!r} has no value")
        return values

    def argv(self, given: dict[str, Any]) -> list[str]:
        """The command with parameters substituted, split into arguments (shell-quoted)."""
        values = {k: shlex.quote(str(v)) for k, v in self.resolve(given).items()}
        return shlex.split(self.command.format(**values))


@dataclass(frozen=True)
class MLProject:
    name: str
    path: Path
    entry_points: dict[str, EntryPoint]
    env: dict[str, str]

    def entry_point(self, name: str = "main") -> EntryPoint:
        try:
            return self.entry_points[name]
        except KeyError:
            raise ContractError(
                self.name, "MLproject", f"has no entry point {name!r}"
            ) from None


def load(project_dir: Path) -> MLProject:
    """Parse and check ``<project_dir>/MLproject``; any problem is a :class:`ContractError`."""
    project = project_dir.name
    file = project_dir / "MLproject"
    if not file.is_file():
        raise ContractError(project, "MLproject", "is missing: every project is an MLflow Project")
    try:
        spec = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise ContractError(project, "MLproject", f"is not valid YAML: {exc}") from None
    if not isinstance(spec, dict):
        raise ContractError(project, "MLproject", "must be a YAML mapping")
    declared = spec.get("name")
    if declared is not None and declared != project:
        raise ContractError(
            project, "MLproject",
            f"declares name {declared!r} but lives in folder {project!r}; make them equal",
        )
    env = {key: str(spec[key]) for key in ENV_KEYS if key in spec}
    for key, value in env.items():
        if key != "docker_env" and not (project_dir / value).is_file():
            raise ContractError(project, "MLproject", f"{key} names {value!r}, which is missing")
    raw_entries = spec.get("entry_points")
    if not isinstance(raw_entries, dict) or not raw_entries:
        raise ContractError(project, "MLproject", "has no entry_points mapping")
    entry_points = {}
    for ep_name, raw in raw_entries.items():
        entry_points[str(ep_name)] = _entry_point(project, str(ep_name), raw)
    if "main" not in entry_points:
        raise ContractError(project, "MLproject", "has no 'main' entry point")
    return MLProject(name=project, path=project_dir, entry_points=entry_points, env=env)


def _entry_point(project: str, name: str, raw: Any) -> EntryPoint:
    where = f"entry point {name!r}"
    if not isinstance(raw, dict) or not isinstance(raw.get("command"), str):
        raise ContractError(project, "MLproject", f"{where} needs a 'command' string")
    parameters = {}
    raw_parameters = raw.get("parameters") or {}
    if not isinstance(raw_parameters, dict):
        raise ContractError(project, "MLproject", f"{where}: 'parameters' must be a mapping")
    for p_name, p_raw in raw_parameters.items():
        if isinstance(p_raw, dict):
            p_type = str(p_raw.get("type", "string"))
            default = p_raw.get("default")
        else:  # MLflow's shorthand: "name: type"
            p_type, default = str(p_raw), None
        if p_type not in PARAMETER_TYPES:
            raise ContractError(
                project, "MLproject",
                f"{where}: parameter {p_name!r} has type {p_type!r}; "
                f"use one of {', '.join(sorted(PARAMETER_TYPES))}",
            )
        parameter = Parameter(str(p_name), p_type, default)
        if default is not None:
            try:
                parameter.convert(default)
            except ValueError as exc:
                raise ContractError(project, "MLproject", f"{where}: default of {exc}") from None
        parameters[str(p_name)] = parameter
    command = raw["command"]
    try:
        command.format(**{p: "x" for p in parameters})
    except (KeyError, IndexError) as exc:
        raise ContractError(
            project, "MLproject", f"{where}: command uses {exc} which is not a declared parameter"
        ) from None
    return EntryPoint(name=name, command=command, parameters=parameters)
