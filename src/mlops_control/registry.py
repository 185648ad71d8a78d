"""A small client for MLflow's REST API, standard library only.

The Lambdas talk to MLflow through this (the mlflow package is too big and slow to import
there), and so does the local runtime, so that both run the very same workflow steps.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mlops_control.errors import NotFound, RegistryError

RETRYABLE_STATUS = {429, 500, 502, 503, 504}


@dataclass(frozen=True)
class ModelVersion:
    name: str
    version: str
    tags: dict[str, str]
    run_id: str | None
    source: str
    status: str
    creation_timestamp: int
    aliases: tuple[str, ...] = ()
    """The model's aliases that point at this version (``@staging``, ``@champion``)."""

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ModelVersion:
        return cls(
            name=raw["name"],
            version=str(raw["version"]),
            tags={t["key"]: t.get("value", "") for t in raw.get("tags", [])},
            run_id=raw.get("run_id") or None,
            source=raw.get("source", ""),
            status=raw.get("status", "READY"),
            creation_timestamp=int(raw.get("creation_timestamp", 0)),
            aliases=tuple(sorted(str(a) for a in raw.get("aliases", []))),
        )

    @property
    def number(self) -> int:
        return int(self.version)


@dataclass
class RegistryClient:
    """``tracking_uri`` is the MLflow server's http(s) address."""

    tracking_uri: str
    timeout: float = 10.0
    retries: int = 3
    token: str | None = field(default=None, repr=False)
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, tracking_uri: str | None = None) -> RegistryClient:
        uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
        if not uri.startswith(("http://", "https://")):
            raise RegistryError(
                f"MLFLOW_TRACKING_URI must be an http(s) address of an MLflow server, got {uri!r}"
            )
        return cls(
            tracking_uri=uri.rstrip("/"),
            token=os.environ.get("MLFLOW_TRACKING_TOKEN"),
            username=os.environ.get("MLFLOW_TRACKING_USERNAME"),
            password=os.environ.get("MLFLOW_TRACKING_PASSWORD"),
        )

    # --- transport ------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        elif self.username and self.password:
            pair = f"{self.username}:{self.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        return headers

    def request(self, method: str, path: str, body: dict[str, Any] | None = None,
                query: dict[str, Any] | None = None, raw: bool = False) -> Any:
        url = f"{self.tracking_uri}{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query, doseq=True)
        data = json.dumps(body).encode() if body is not None else None
        attempt = 0
        while True:
            attempt += 1
            req = urllib.request.Request(url, data=data, method=method, headers=self._headers())
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as response:
                    payload = response.read()
                    if raw:
                        return payload
                    return json.loads(payload) if payload else {}
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode(errors="replace")
                if exc.code in RETRYABLE_STATUS and attempt <= self.retries:
                    time.sleep(0.5 * 2 ** (attempt - 1))
                    continue
                raise _registry_error(method, path, exc.code, detail) from None
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
                if attempt <= self.retries:
                    time.sleep(0.5 * 2 ** (attempt - 1))
                    continue
                reason = getattr(exc, "reason", exc)
                raise RegistryError(
                    f"MLflow at {self.tracking_uri} is unreachable ({reason}); is it running?"
                ) from None

    # --- registered models and versions ---------------------------------------------------
    def get_model_version(self, name: str, version: str) -> ModelVersion:
        raw = self.request("GET", "/api/2.0/mlflow/model-versions/get",
                           query={"name": name, "version": version})
        return ModelVersion.from_json(raw["model_version"])

    def iter_model_versions(self, name: str) -> Iterator[ModelVersion]:
        token: str | None = None
        while True:
            query: dict[str, Any] = {"filter": f"name='{_quote(name)}'", "max_results": 200}
            if token:
                query["page_token"] = token
            raw = self.request("GET", "/api/2.0/mlflow/model-versions/search", query=query)
            for item in raw.get("model_versions", []):
                yield ModelVersion.from_json(item)
            token = raw.get("next_page_token")
            if not token:
                return

    def model_versions(self, name: str) -> list[ModelVersion]:
        """Every version of ``name`` with its aliases (MLflow's search leaves them out: they
        come from the registered model)."""
        versions = sorted(self.iter_model_versions(name), key=lambda v: v.number)
        aliases = self.aliases(name) if versions else {}
        held: dict[str, list[str]] = {}
        for alias, version in aliases.items():
            held.setdefault(version, []).append(alias)
        return [dataclasses.replace(v, aliases=tuple(sorted(held.get(v.version, []))))
                for v in versions]

    def aliases(self, name: str) -> dict[str, str]:
        """``{alias: version}`` of a registered model."""
        try:
            raw = self.request("GET", "/api/2.0/mlflow/registered-models/get",
                               query={"name": name})
        except NotFound:  # deleted since its versions were listed
            return {}
        return {str(a["alias"]): str(a["version"])
                for a in raw.get("registered_model", {}).get("aliases", [])}

    def registered_model_names(self) -> list[str]:
        names: list[str] = []
        token: str | None = None
        while True:
            query: dict[str, Any] = {"max_results": 200}
            if token:
                query["page_token"] = token
            raw = self.request("GET", "/api/2.0/mlflow/registered-models/search", query=query)
            names.extend(m["name"] for m in raw.get("registered_models", []))
            token = raw.get("next_page_token")
            if not token:
                return sorted(names)

    def set_tag(self, name: str, version: str, key: str, value: str) -> None:
        self.request("POST", "/api/2.0/mlflow/model-versions/set-tag",
                     body={"name": name, "version": version, "key": key, "value": value})

    def delete_tag(self, name: str, version: str, key: str) -> None:
        with contextlib.suppress(NotFound):
            self.request("DELETE", "/api/2.0/mlflow/model-versions/delete-tag",
                         body={"name": name, "version": version, "key": key})

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point ``@alias`` at ``version`` (an alias names one version per model: this moves it)."""
        self.request("POST", "/api/2.0/mlflow/registered-models/alias",
                     body={"name": name, "alias": alias, "version": version})

    def delete_alias(self, name: str, alias: str) -> None:
        with contextlib.suppress(NotFound):
            self.request("DELETE", "/api/2.0/mlflow/registered-models/alias",
                         body={"name": name, "alias": alias})

    def download_uri(self, name: str, version: str) -> str:
        raw = self.request("GET", "/api/2.0/mlflow/model-versions/get-download-uri",
                           query={"name": name, "version": version})
        return str(raw["artifact_uri"])

    # --- runs and artifacts ---------------------------------------------------------------
    def get_run(self, run_id: str) -> dict[str, Any]:
        raw = self.request("GET", "/api/2.0/mlflow/runs/get", query={"run_id": run_id})
        return dict(raw["run"])

    def run_artifact(self, run_id: str, path: str) -> bytes:
        """Bytes of one artifact of a run, through the server (works for any artifact store
        the server proxies)."""
        return bytes(self.request("GET", "/get-artifact", query={"run_uuid": run_id, "path": path},
                                  raw=True))

    # --- webhooks -------------------------------------------------------------------------
    def list_webhooks(self) -> list[dict[str, Any]]:
        hooks: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            query: dict[str, Any] = {"max_results": 100}
            if token:
                query["page_token"] = token
            raw = self.request("GET", "/api/2.0/mlflow/webhooks", query=query)
            hooks.extend(raw.get("webhooks", []))
            token = raw.get("next_page_token")
            if not token:
                return hooks

    def create_webhook(self, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.request("POST", "/api/2.0/mlflow/webhooks", body=body)["webhook"])

    def update_webhook(self, webhook_id: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(self.request("PATCH", f"/api/2.0/mlflow/webhooks/{webhook_id}",
                                 body=body)["webhook"])


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


def _registry_error(method: str, path: str, status: int, detail: str) -> RegistryError:
    code, message = None, detail
    try:
        parsed = json.loads(detail)
        code, message = parsed.get("error_code"), parsed.get("message", detail)
    except ValueError:
        pass
    text = f"MLflow refused {method} {path}: {message}"
    if status == 404 or code == "RESOURCE_DOES_NOT_EXIST":
        return NotFound(text, status, code)
    return RegistryError(text, status, code)
