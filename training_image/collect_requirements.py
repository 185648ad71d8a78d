"""Union of every project's ``python_env.yaml`` dependencies (plus the control centre's own
requirements.txt), for the shared image: one install at build time, nothing at job start.

A conflict fails the build (in CI, not at 3 a.m.): two sources that pin one package to
different versions, a pin that another source's range excludes, or a project that wants a
different Python than the image has. The message names the package and the sources.

    python collect_requirements.py --projects projects --base requirements.txt \\
        --python 3.11 --output image-requirements.txt
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

BASE_SOURCE = "control centre (requirements.txt)"
# Tools the environment file lists for building, not for running a project.
BUILD_ONLY = {"pip", "setuptools", "wheel"}


class ConflictError(Exception):
    """The projects' requirements cannot be installed together."""


@dataclass
class Wanted:
    name: str
    specifier: SpecifierSet = field(default_factory=SpecifierSet)
    extras: set[str] = field(default_factory=set)
    sources: dict[str, str] = field(default_factory=dict)
    """source → the requirement line it gave, for the error messages."""

    def add(self, requirement: Requirement, source: str) -> None:
        self.extras |= set(requirement.extras)
        self.sources[source] = str(requirement)
        self.specifier &= requirement.specifier
        pins = {s.version for s in self.specifier if s.operator in ("==", "===")}
        if len(pins) > 1:
            raise ConflictError(self._describe("is pinned to different versions"))
        if pins:
            pin = next(iter(pins))
            if not self.specifier.contains(pin, prereleases=True):
                raise ConflictError(self._describe(f"is pinned to {pin}, which another "
                                                   "source's range excludes"))

    def _describe(self, problem: str) -> str:
        given = "; ".join(f"{src}: {line}" for src, line in sorted(self.sources.items()))
        return f"{self.name} {problem} ({given})"

    def line(self) -> str:
        extras = f"[{','.join(sorted(self.extras))}]" if self.extras else ""
        return f"{self.name}{extras}{self.specifier}"


def parse_line(line: str, source: str) -> Requirement | None:
    text = line.split("#", 1)[0].strip()
    if not text:
        return None
    if text.startswith("-"):
        raise ConflictError(f"{source}: option lines ({text}) are not supported in the image")
    try:
        requirement = Requirement(text)
    except InvalidRequirement as exc:
        raise ConflictError(f"{source}: {text!r} is not a valid requirement: {exc}") from None
    if requirement.url:
        raise ConflictError(f"{source}: {text!r} installs from a URL; pin a version instead")
    return requirement


def project_requirements(project_dir: Path, python: str) -> list[Requirement]:
    env_file = project_dir / "python_env.yaml"
    if not env_file.is_file():
        return []
    raw = yaml.safe_load(env_file.read_text()) or {}
    if not isinstance(raw, dict):
        raise ConflictError(f"{project_dir.name}: python_env.yaml must be a mapping")
    wanted_python = str(raw.get("python", python))
    if not (wanted_python == python or wanted_python.startswith(f"{python}.")):
        raise ConflictError(f"{project_dir.name} wants Python {wanted_python}; the shared image "
                            f"has Python {python}")
    requirements = []
    for item in raw.get("dependencies") or []:
        requirement = parse_line(str(item), project_dir.name)
        if requirement is not None and canonicalize_name(requirement.name) not in BUILD_ONLY:
            requirements.append(requirement)
    return requirements


def collect(projects_dir: Path, base: Path | None, python: str) -> list[Wanted]:
    wanted: dict[str, Wanted] = {}

    def add(requirement: Requirement, source: str) -> None:
        if requirement.marker is not None and not requirement.marker.evaluate(
                {"python_version": python, "python_full_version": f"{python}.0",
                 "sys_platform": "linux", "platform_system": "Linux",
                 "platform_machine": "x86_64", "implementation_name": "cpython",
                 "os_name": "posix"}):
            return
        key = canonicalize_name(requirement.name)
        wanted.setdefault(key, Wanted(key)).add(requirement, source)

    if base is not None:
        for line in base.read_text().splitlines():
            requirement = parse_line(line, BASE_SOURCE)
            if requirement is not None:
                add(requirement, BASE_SOURCE)
    for project_dir in sorted(p for p in projects_dir.iterdir() if p.is_dir()):
        for requirement in project_requirements(project_dir, python):
            add(requirement, project_dir.name)
    return sorted(wanted.values(), key=lambda w: w.name)


def render(wanted: list[Wanted]) -> str:
    lines = ["# Generated by training_image/collect_requirements.py: do not edit."]
    for item in wanted:
        lines.append(f"{item.line()}  # {', '.join(sorted(item.sources))}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=Path, default=Path("projects"))
    parser.add_argument("--base", type=Path, default=None)
    parser.add_argument("--python", default=f"{sys.version_info[0]}.{sys.version_info[1]}")
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        wanted = collect(args.projects, args.base, args.python)
    except ConflictError as exc:
        print(f"collect_requirements: conflict: {exc}", file=sys.stderr)
        return 1
    args.output.write_text(render(wanted))
    print(f"collect_requirements: {len(wanted)} requirements -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
