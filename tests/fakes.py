"""In-memory fakes shared by the AWS tests ("prefer in-memory fakes over mocks")."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from mlops_control.errors import NotFound
from mlops_control.registry import ModelVersion, RegistryClient


@dataclass
class FakeRegistry(RegistryClient):
    """The MLflow registry as a dict: ``versions[(name, version)] = tags``."""

    tracking_uri: str = "https://mlflow.example.com"
    versions: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    sources: dict[tuple[str, str], str] = field(default_factory=dict)
    smoke: dict[str, dict] = field(default_factory=dict)
    writes: list[tuple[str, str, str, str | None]] = field(default_factory=list)
    artifacts: dict[tuple[str, str], bytes] = field(default_factory=dict)
    """Run artifacts by ``(run_id, path)``; any other path of a run in ``smoke`` is its smoke
    test payload."""
    model_aliases: dict[tuple[str, str], str] = field(default_factory=dict)
    """``model_aliases[(name, alias)] = version``, as MLflow keeps them (one version per alias)."""

    def add(self, name: str, version: str, source: str = "", **tags: str) -> None:
        self.versions[(name, version)] = dict(tags)
        self.sources[(name, version)] = source or f"s3://artifacts/mlflow/1/models/m-{version}/artifacts"

    def _mv(self, name: str, version: str) -> ModelVersion:
        if (name, version) not in self.versions:
            raise NotFound(f"no {name}/{version}", 404)
        return ModelVersion(name=name, version=version, tags=dict(self.versions[(name, version)]),
                            run_id=f"run-{version}", source=self.sources[(name, version)],
                            status="READY", creation_timestamp=0,
                            aliases=tuple(sorted(a for (n, a), v in self.model_aliases.items()
                                                 if n == name and v == version)))

    def get_model_version(self, name: str, version: str) -> ModelVersion:
        return self._mv(name, version)

    def model_versions(self, name: str) -> list[ModelVersion]:
        found = [self._mv(n, v) for (n, v) in self.versions if n == name]
        if not found:
            raise NotFound(f"no model {name}", 404)
        return sorted(found, key=lambda v: v.number)

    def registered_model_names(self) -> list[str]:
        return sorted({n for n, _ in self.versions})

    def set_tag(self, name: str, version: str, key: str, value: str) -> None:
        self.versions[(name, version)][key] = value
        self.writes.append((name, version, key, value))

    def delete_tag(self, name: str, version: str, key: str) -> None:
        self.versions[(name, version)].pop(key, None)
        self.writes.append((name, version, key, None))

    def aliases(self, name: str) -> dict[str, str]:
        return {a: v for (n, a), v in self.model_aliases.items() if n == name}

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self.model_aliases[(name, alias)] = version
        self.writes.append((name, version, f"@{alias}", version))

    def delete_alias(self, name: str, alias: str) -> None:
        version = self.model_aliases.pop((name, alias), None)
        self.writes.append((name, version or "", f"@{alias}", None))

    def download_uri(self, name: str, version: str) -> str:
        return self.sources[(name, version)]

    def run_artifact(self, run_id: str, path: str) -> bytes:
        if (run_id, path) in self.artifacts:
            return self.artifacts[(run_id, path)]
        if run_id not in self.smoke:
            raise NotFound("no artifact", 404)
        return json.dumps(self.smoke[run_id]).encode()

    def tags(self, name: str, version: str) -> dict[str, str]:
        return self.versions[(name, version)]
