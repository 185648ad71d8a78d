"""Registered model versions on this machine: ``name``, ``name/3`` or ``name/latest`` resolved
through the registry and downloaded once into the state folder."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from mlops_control.errors import ControlCentreError, NotFound
from mlops_control.registry import RegistryClient


def parse_ref(ref: str) -> tuple[str, str]:
    """``test-project`` / ``test-project/latest`` / ``test-project/3`` / ``models:/x/3``."""
    ref = ref.removeprefix("models:/").strip("/")
    name, _, version = ref.partition("/")
    version = version or "latest"
    # The name becomes a folder under the state's models/: never one that leaves it.
    if not name or name in (".", "..") or "\\" in name or not (
            version == "latest" or (version.isascii() and version.isdigit())):
        raise ControlCentreError(
            f"model {ref!r} is not of the form <name>, <name>/latest or <name>/<version>"
        )
    return name, version


def resolve(client: RegistryClient, ref: str) -> tuple[str, str]:
    name, version = parse_ref(ref)
    if version != "latest":
        client.get_model_version(name, version)  # raises NotFound with a clear message
        return name, version
    try:
        versions = client.model_versions(name)
    except NotFound:
        versions = []
    if not versions:
        raise ControlCentreError(
            f"no registered versions of {name!r}; train one with "
            f"`make local-training project={name} register=True`"
        )
    return name, versions[-1].version


def download(client: RegistryClient, models_dir: Path, name: str, version: str) -> Path:
    """The model's folder (holding MLmodel), downloaded on first use. Registered versions are
    immutable, so a completed download is reused as it is."""
    target = models_dir / name / version
    if (target / "MLmodel").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_TRACKING_URI", client.tracking_uri)
    import mlflow.artifacts

    staging = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=target.parent))
    try:
        # The version's artifact location comes from our own registry client: a models:/
        # URI would be resolved by mlflow through MLFLOW_REGISTRY_URI or the process-wide
        # tracking URI, which may name another server than the one asked.
        local = Path(mlflow.artifacts.download_artifacts(
            artifact_uri=client.download_uri(name, version), dst_path=str(staging),
            tracking_uri=client.tracking_uri,
        ))
        if not (local / "MLmodel").is_file():
            raise ControlCentreError(f"model {name}/{version} has no MLmodel file")
        # Rename into place so a half-finished download is never mistaken for a model. Each
        # downloader has its own staging folder beside the target, so concurrent downloads
        # (threads or processes) never share files; the first rename wins and a later one
        # finds the version in place and drops its copy: versions are immutable.
        try:
            local.rename(target)
        except OSError:
            if not (target / "MLmodel").is_file():
                raise
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
