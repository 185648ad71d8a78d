"""Static checks of a project's code for ``mlops validate``: the script its command runs, the
name it registers under, and imports its declared environment does not install."""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import importlib.util
import sys
from pathlib import Path

import yaml

from mlops_control.errors import ContractError
from mlops_control.mlproject import MLProject, shell_words

# Import names whose distribution is named otherwise, for packages not installed here.
KNOWN_DISTRIBUTIONS = {"sklearn": "scikit-learn", "yaml": "pyyaml", "PIL": "pillow",
                       "cv2": "opencv-python", "skimage": "scikit-image", "bs4": "beautifulsoup4"}


def _script(spec: MLProject, entry: str = "main") -> str | None:
    ep = spec.entry_points[entry]
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


def _sources(spec: MLProject) -> dict[str, ast.Module]:
    trees = {}
    for file in sorted(spec.path.glob("*.py")):
        try:
            trees[file.name] = ast.parse(file.read_text(), filename=file.name)
        except SyntaxError as exc:
            trees.pop(file.name, None)
            raise ContractError(spec.name, file.name, f"has a syntax error at line {exc.lineno}: "
                                f"{exc.msg}") from None
    return trees


def registration_problems(spec: MLProject) -> list[ContractError]:
    """A literal ``registered_model_name`` (or ``register_model`` name) other than the project's,
    or no registration at all."""
    try:
        trees = _sources(spec)
    except ContractError as exc:
        return [exc]
    problems, seen = [], False
    for file, tree in trees.items():
        constants = {t.id: n.value.value for n in tree.body if isinstance(n, ast.Assign)
                     for t in n.targets if isinstance(t, ast.Name)
                     and isinstance(n.value, ast.Constant) and isinstance(n.value.value, str)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            values = [k.value for k in node.keywords if k.arg == "registered_model_name"]
            func = node.func
            if (isinstance(func, ast.Attribute) and func.attr == "register_model") or (
                    isinstance(func, ast.Name) and func.id == "register_model"):
                values += [k.value for k in node.keywords if k.arg == "name"] + node.args[1:2]
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
                            f"it under the project's name: registered_model_name={spec.name!r}"))
    if not seen:
        problems.append(ContractError(
            spec.name, _script(spec) or "train.py",
            f"never registers a model; pass registered_model_name={spec.name!r} to "
            "mlflow.<flavor>.log_model(...) (None when TEST_ENV is 'True')"))
    return problems


def declared_requirements(spec: MLProject) -> tuple[str, list[str]]:
    """(the environment file, the requirement lines it declares)."""
    if "python_env" in spec.env:
        file = spec.env["python_env"]
        raw = yaml.safe_load((spec.path / file).read_text()) or {}
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
        raw = yaml.safe_load((spec.path / file).read_text()) or {}
        lines = []
        for item in raw.get("dependencies") or []:
            if isinstance(item, dict):
                lines += [str(x) for x in item.get("pip") or []]
            else:
                lines.append(str(item).split("=")[0])
        return file, lines
    return "MLproject (no python_env)", ["mlflow"]


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


def import_problems(spec: MLProject, importable_here: bool) -> list[ContractError]:
    from packaging.utils import canonicalize_name

    try:
        trees = _sources(spec)
        env_file, lines = declared_requirements(spec)
    except (ContractError, OSError) as exc:
        return [exc if isinstance(exc, ContractError)
                else ContractError(spec.name, "MLproject", f"environment file: {exc}")]
    installed = _closure(lines)
    mapping = metadata.packages_distributions()
    local = {p.stem for p in spec.path.glob("*.py")} | {p.name for p in spec.path.iterdir()
                                                         if p.is_dir()}
    problems, reported = [], set()
    for file, tree in trees.items():
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
