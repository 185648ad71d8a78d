"""Reading and checking an MLflow Project's ``MLproject`` file, without importing mlflow."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mlops_control.errors import ContractError, ContractProblems

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
    problems: tuple[str, ...] = ()
    """What would make bash not run the command as meant (the contract reports them)."""

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

    def command_line(self, given: dict[str, Any]) -> str:
        """The command exactly as ``mlflow run`` hands it to ``bash -c``: each value checked
        against its type but substituted as given (MLflow converts nothing), shell-quoted."""
        self.resolve(given)
        values = {}
        for name, parameter in self.parameters.items():
            raw = given.get(name, parameter.default)
            values[name] = shlex.quote(str(raw))
        return self.command.format(**values)

    def argv(self, given: dict[str, Any]) -> list[str] | None:
        """The words bash would pass to the program, when the command is one simple command
        (no pipes, redirections, expansions...); ``None`` means: run it through bash."""
        return shell_words(self.command_line(given))


# Unquoted, these make bash do more than split words: such commands run through bash itself.
_SHELL_SYNTAX = set(";&|<>()`$*?[]{}\n\r")


def shell_words(text: str) -> list[str] | None:
    """Split ``text`` into words as bash does, or ``None`` if it uses any shell syntax beyond
    quoting, escapes and backslash-newline continuations (then only bash can say)."""
    text = text.rstrip(" \t\n")  # bash ignores trailing blank lines (a '|' block ends in one)
    words: list[str] = []
    current: list[str] = []
    in_word = False
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            if i + 1 >= n:
                return None
            if text[i + 1] != "\n":  # backslash-newline is a continuation: removed
                current.append(text[i + 1])
                in_word = True
            i += 2
            continue
        if c == "'":
            end = text.find("'", i + 1)
            if end < 0:
                return None
            current.append(text[i + 1:end])
            in_word, i = True, end + 1
            continue
        if c == '"':
            in_word, i = True, i + 1
            while True:
                if i >= n or text[i] in "$`":
                    return None
                d = text[i]
                if d == '"':
                    i += 1
                    break
                if d == "\\" and i + 1 < n and text[i + 1] in '$`"\\\n':
                    if text[i + 1] != "\n":
                        current.append(text[i + 1])
                    i += 2
                    continue
                current.append(d)
                i += 1
            continue
        if c in " \t":
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
            i += 1
            continue
        if c in _SHELL_SYNTAX or (not in_word and c in "~#") or (c == "=" and not words):
            return None
        current.append(c)
        in_word, i = True, i + 1
    if in_word:
        words.append("".join(current))
    return words or None


def command_problems(command: str, substituted: str | None = None) -> list[str]:
    """What would make ``bash -c <command>`` not run the one command its author meant
    (``substituted``: the command with its placeholders filled in)."""
    problems = []
    lines = command.split("\n")
    for number, line in enumerate(lines, start=1):
        stripped = line.rstrip(" \t")
        if stripped != line and stripped.endswith("\\") and number < len(lines):
            problems.append(
                f"command line {number} has spaces after its closing backslash, so bash does "
                "not join it with the next line; remove the trailing spaces")
        if number > 1 and line.lstrip().startswith("-") and not lines[number - 2].endswith("\\"):
            problems.append(
                f"command line {number} ({line.strip()[:30]!r}) continues the command, but "
                f"line {number - 1} does not end with a backslash, so bash runs it as a "
                f"separate command; end line {number - 1} with \\ or use a folded scalar (>)")
    words = shell_words(command if substituted is None else substituted)
    if words and any(w[:1] in (" ", "\t") for w in words[1:]):
        problems.append(
            "command has a backslash before a space ('\\ '), which bash reads as a literal "
            "space, not a line continuation (a folded '>' YAML scalar joins lines with "
            "spaces); drop the backslashes, or use a literal block '|'")
    return problems


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
    """Parse and check ``<project_dir>/MLproject``; any problem is a :class:`ContractError`
    (:class:`ContractProblems` when there are several)."""
    spec, problems = read(project_dir)
    if len(problems) == 1:
        raise problems[0]
    if problems:
        raise ContractProblems(project_dir.name, problems)
    assert spec is not None
    return spec


def read(project_dir: Path) -> tuple[MLProject | None, list[ContractError]]:
    """Parse ``<project_dir>/MLproject`` without stopping at the first problem: (the spec,
    every problem found), so that ``validate`` reports them all at once. The spec is ``None``
    only when there is no YAML mapping to read; with problems it holds the entry points that
    parse (maybe no ``main``). Its ``name`` is the folder's, the name the model must be
    registered under, even when the file declares another (that is one of the problems)."""
    project = project_dir.name
    file = project_dir / "MLproject"
    if not file.is_file():
        return None, [ContractError(project, "MLproject",
                                    "is missing: every project is an MLflow Project")]
    try:
        spec = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        return None, [ContractError(project, "MLproject", f"is not valid YAML: {exc}")]
    if not isinstance(spec, dict):
        return None, [ContractError(project, "MLproject", "must be a YAML mapping")]
    problems = []
    declared = spec.get("name")
    if declared is not None and declared != project:
        problems.append(ContractError(
            project, "MLproject",
            f"declares name {declared!r} but lives in folder {project!r}; make them equal",
        ))
    env = {key: str(spec[key]) for key in ENV_KEYS if key in spec}
    for key, value in env.items():
        if key != "docker_env" and not (project_dir / value).is_file():
            problems.append(ContractError(
                project, "MLproject", f"{key} names {value!r}, which is missing"))
    raw_entries = spec.get("entry_points")
    entry_points = {}
    if not isinstance(raw_entries, dict) or not raw_entries:
        problems.append(ContractError(project, "MLproject", "has no entry_points mapping"))
    else:
        for ep_name, raw in raw_entries.items():
            try:
                entry_points[str(ep_name)] = _entry_point(project, str(ep_name), raw)
            except ContractError as exc:
                problems.append(exc)
        if "main" not in {str(n) for n in raw_entries}:
            problems.append(ContractError(project, "MLproject", "has no 'main' entry point"))
    return (MLProject(name=project, path=project_dir, entry_points=entry_points, env=env),
            problems)


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
    except ValueError as exc:
        raise ContractError(
            project, "MLproject",
            f"{where}: command is not a valid template ({exc}); write {{{{ and }}}} for "
            "literal braces") from None
    problems = command_problems(command, command.format(**{p: "x" for p in parameters}))
    return EntryPoint(name=name, command=command, parameters=parameters,
                      problems=tuple(f"{where}: {p}" for p in problems))
