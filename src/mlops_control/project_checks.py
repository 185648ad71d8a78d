"""Static checks of a project's code for ``mlops validate``: the script its command runs, the
name it registers under, and imports its declared environment does not install."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mlops_control.errors import ContractError
from mlops_control.mlproject import MLProject, shell_words

# Import names whose distribution is named otherwise, for packages not installed here.
KNOWN_DISTRIBUTIONS = {"sklearn": "scikit-learn", "yaml": "pyyaml", "PIL": "pillow",
                       "cv2": "opencv-python", "skimage": "scikit-image", "bs4": "beautifulsoup4"}


def _script(spec: MLProject, entry: str = "main") -> str | None:
    ep = spec.entry_points.get(entry)  # none when validate goes on past a broken MLproject
    if ep is None:
        return None
    words = shell_words(ep.command.format(**{p: "x" for p in ep.parameters})) or []
    words = [w for w in words if not w.startswith("-")]
    if len(words) >= 2 and Path(words[0]).name.startswith("python") and words[1].endswith(".py"):
        return words[1]
    return None


def script_problems(spec: MLProject) -> list[ContractError]:
    """The command's continuation problems, and a script it runs that is not there."""
    problems = [ContractError(spec.name, "MLproject", problem)
                for ep in spec.entry_points.values() for problem in ep.problems]
    for name in spec.entry_points:
        script = _script(spec, name)
        if script and not (spec.path / script).is_file():
            problems.append(ContractError(
                spec.name, "MLproject",
                f"entry point {name!r} runs {script}, which is not in the project folder; "
                "fix the command or add the script"))
    return problems


# Folders under a project that hold no code of its own: hidden ones, environments (also any
# folder with a pyvenv.cfg or conda-meta), caches, MLflow's local store, build output, and code
# that training never runs (tests, docs).
SKIPPED_DIRS = {"venv", "__pycache__", "mlruns", "mlartifacts", "node_modules",
                "site-packages", "build", "dist", "tests", "test", "docs"}


def _skipped(folder: Path) -> bool:
    return (folder.name.startswith(".") or folder.name in SKIPPED_DIRS
            or folder.name.endswith(".egg-info")
            or (folder / "pyvenv.cfg").exists() or (folder / "conda-meta").is_dir())


def project_files(spec: MLProject) -> list[Path]:
    """The project's own Python files, in its subfolders too (a script may import a package of
    the project that registers the model), as paths relative to the project folder."""
    found = []
    for root, dirs, files in os.walk(spec.path):
        here = Path(root)
        dirs[:] = sorted(d for d in dirs if not _skipped(here / d))
        found += [(here / f).relative_to(spec.path) for f in sorted(files) if f.endswith(".py")]
    return found


@dataclass(frozen=True)
class Sources:
    """The project's code, read once per validate for every check of it."""

    files: list[Path]
    """Every Python file of the project, relative to its folder."""
    trees: dict[str, ast.Module]
    """The files training runs, parsed, by relative path."""
    unparsed: list[ContractError]
    """One problem per such file that does not parse."""


def code_problems(spec: MLProject, importable_here: bool) -> list[ContractError]:
    """What is wrong with the code training runs: its registrations, then its imports."""
    sources = _sources(spec)
    return registration_problems(spec, sources) + import_problems(spec, importable_here,
                                                                  sources)


def _sources(spec: MLProject) -> Sources:
    """The parsed files training runs, by relative path, and one problem per such file that
    does not parse.

    Those are the entry points' scripts, ``data.py`` and every project file they import, at
    any depth: a plotting script in ``scripts/`` that training never runs must not fail
    validate over its imports. When an entry point's command is no single ``python x.py``
    (its scripts cannot be known), every project file counts."""
    every = project_files(spec)
    files = set(every)
    roots = [_script(spec, entry) for entry in spec.entry_points]
    if not roots or None in roots:
        todo = sorted(files)
    else:
        todo = sorted({Path(r) for r in roots if r} | {Path("data.py")} & files)
    trees, problems, seen = {}, [], set()
    while todo:
        file = todo.pop(0)
        if file in seen or file not in files:
            continue
        seen.add(file)
        name = file.as_posix()
        try:
            tree = ast.parse((spec.path / file).read_text(), filename=name)
        except SyntaxError as exc:
            problems.append(ContractError(spec.name, name, f"has a syntax error at line "
                                          f"{exc.lineno}: {exc.msg}"))
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(ContractError(spec.name, name, f"cannot be read: {exc}"))
            continue
        trees[name] = tree
        todo += sorted(_imported_files(tree, file, files) - seen)
    return Sources(every, trees, problems)


def _imported_files(tree: ast.Module, file: Path, files: set[Path]) -> set[Path]:
    """The project files ``file`` imports, looked up as Python would: from the project
    folder, from the script's own folder (first on sys.path), and relative imports from the
    file's package."""
    dotted: list[tuple[Path, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            dotted += [(base, a.name) for a in node.names for base in (Path(), file.parent)]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = file.parent
                for _ in range(node.level - 1):
                    base = base.parent
                bases = [base]
            else:
                bases = [Path(), file.parent]
            module = node.module or ""
            for base in bases:
                if module:
                    dotted.append((base, module))
                dotted += [(base, f"{module}.{a.name}".lstrip(".")) for a in node.names]
    found = set()
    for base, name in dotted:
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):
            stem = base.joinpath(*parts[:depth])
            found |= {c for c in (stem.with_suffix(".py"), stem / "__init__.py") if c in files}
    return found


def _call_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def registration_problems(spec: MLProject, sources: Sources) -> list[ContractError]:
    """A literal ``registered_model_name`` (or ``register_model`` / ``create_model_version``
    name) other than the project's, or no registration at all, in the code training runs;
    and the files that do not parse."""
    problems, seen = list(sources.unparsed), False
    for file, tree in sources.trees.items():
        constants = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                     for t in n.targets if isinstance(t, ast.Name)
                     and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            values = [k.value for k in node.keywords if k.arg == "registered_model_name"]
            argument = "registered_model_name"
            called = _call_name(node.func)
            if called == "register_model":  # mlflow.register_model(model_uri, name)
                values += [k.value for k in node.keywords if k.arg == "name"] + node.args[1:2]
                argument = "name"
            elif called == "create_model_version":  # MlflowClient().create_model_version(name, ...)
                values += [k.value for k in node.keywords if k.arg == "name"] + node.args[:1]
                argument = "name"
            for value in values:
                seen = True
                options = [value.body, value.orelse] if isinstance(value, ast.IfExp) else [value]
                for option in options:
                    literal = (option.value if isinstance(option, ast.Constant) else
                               constants.get(option.id) if isinstance(option, ast.Name) else None)
                    if isinstance(literal, str) and literal != spec.name:
                        problems.append(ContractError(
                            spec.name, file,
                            f"line {node.lineno} registers the model as {literal!r}; register "
                            f"it under the project's name: {argument}={spec.name!r}"))
    if not seen and not sources.unparsed:  # a file that does not parse may be the one registering
        problems.append(ContractError(
            spec.name, _script(spec) or "train.py",
            f"never registers a model; pass registered_model_name={spec.name!r} to "
            "mlflow.<flavor>.log_model(...) (None when TEST_ENV is 'True'), or call "
            "mlflow.register_model / MlflowClient().create_model_version with that name"))
    return problems


def declared_requirements(spec: MLProject) -> tuple[str, list[str]]:
    """(the environment file, the requirement lines it declares)."""
    if "python_env" in spec.env:
        file = spec.env["python_env"]
        raw = _env_mapping(spec, file)
        lines = []
        for item in raw.get("dependencies") or []:
            item = str(item).strip()
            if item.startswith("-r "):
                lines += (spec.path / item[3:].strip()).read_text().splitlines()
            else:
                lines.append(item)
        return file, lines
    if "conda_env" in spec.env:
        file = spec.env["conda_env"]
        raw = _env_mapping(spec, file)
        lines = []
        for item in raw.get("dependencies") or []:
            if isinstance(item, dict):
                lines += [str(x) for x in item.get("pip") or []]
            else:
                lines.append(str(item).split("=")[0])
        return file, lines
    return "MLproject (no python_env)", ["mlflow"]


def _env_mapping(spec: MLProject, file: str) -> dict[str, Any]:
    """The environment file's YAML mapping; ValueError naming what is wrong with it."""
    try:
        raw = yaml.safe_load((spec.path / file).read_text()) or {}
    except yaml.YAMLError as exc:
        raise ValueError(f"is not valid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("dependencies") or [], list):
        raise ValueError("must be a mapping with a 'dependencies' list")
    return raw


def _closure(lines: list[str]) -> set[str]:
    """The distributions the declared requirements install, following the metadata of the
    ones installed here (those not installed here count only themselves)."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.utils import canonicalize_name

    todo: list[Requirement] = []
    seen: set[str] = set()
    for line in lines:
        try:
            todo.append(Requirement(line.split("#")[0].strip()))
        except InvalidRequirement:
            continue
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = metadata.requires(req.name) or []
        except metadata.PackageNotFoundError:
            continue
        for text in requires:
            sub = Requirement(text)
            if sub.marker is None or any(sub.marker.evaluate({"extra": e})
                                         for e in (req.extras or {""})):
                todo.append(sub)
    return seen


def import_problems(spec: MLProject, importable_here: bool,
                    sources: Sources) -> list[ContractError]:
    from packaging.utils import canonicalize_name

    if any(key != "docker_env" and not (spec.path / value).is_file()
           for key, value in spec.env.items()):
        return []  # mlproject.read reports the missing environment file
    try:
        env_file, lines = declared_requirements(spec)
    except OSError as exc:
        return [ContractError(spec.name, "MLproject", f"environment file: {exc}")]
    except ValueError as exc:
        return [ContractError(spec.name, spec.env.get("python_env")
                              or spec.env.get("conda_env") or "MLproject", f"{exc}; fix it")]
    installed = _closure(lines)
    mapping = metadata.packages_distributions()
    # Any module or package the project holds, at any depth: a script's own folder is first on
    # sys.path, so `import helpers` beside src/train/main.py is the project's own code.
    files = sources.files
    local = ({f.stem for f in files} | {part for f in files for part in f.parts[:-1]}
             | {p.name for p in spec.path.iterdir() if p.is_dir()})
    problems, reported = [], set()
    for file, tree in sources.trees.items():  # the unparsed ones: registration_problems
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in local or top in reported \
                        or top == "__future__":
                    continue
                dists = mapping.get(top) or [KNOWN_DISTRIBUTIONS.get(top, top)]
                if not any(canonicalize_name(d) in installed for d in dists):
                    reported.add(top)
                    version = _version(dists[0])
                    problems.append(ContractError(
                        spec.name, file,
                        f"line {node.lineno} imports {top}, which {env_file} does not install; "
                        f"add {dists[0]}{'==' + version if version else ''} to it"))
                elif importable_here and importlib.util.find_spec(top) is None:
                    reported.add(top)
                    problems.append(ContractError(
                        spec.name, file,
                        f"line {node.lineno} imports {top}, which is not installed in this "
                        f"environment ({sys.executable}); install {dists[0]}, or train in the "
                        "project's own environment with MLOPS_ENV_MANAGER=virtualenv"))
    return problems


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
