"""The embedded MLflow server: SQLite backend, local artifacts, bound to 127.0.0.1.

Its data lives under ``<state>/mlflow``; its pid and log file beside it, so ``mlops server
stop`` (``make mlflow-server-rm``) can stop what ``mlops server start`` started.
"""

from __future__ import annotations

import os
import secrets
import sys
from dataclasses import dataclass

from mlops_control import procs
from mlops_control.settings import Settings

HEALTH_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class LocalMLflow:
    settings: Settings
    host: str = "127.0.0.1"

    @property
    def port(self) -> int:
        return self.settings.mlflow_port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def managed(self) -> procs.Managed:
        run = self.settings.run_dir
        return procs.Managed("mlflow", run / "mlflow.pid", self.settings.logs_dir / "mlflow.log")

    def running(self) -> bool:
        return self.managed.pid() is not None

    def encryption_key(self) -> str:
        """A stable key for the webhook secrets MLflow stores: a new key on each start would
        leave MLflow unable to decrypt them, and deliveries would silently stop."""
        key_file = self.settings.secrets_dir / "mlflow-webhook-encryption.key"
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                handle.write(_fernet_key())
        return key_file.read_text().strip()

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update({
            # The receiver runs on this machine, over plain http: allowed here only, never
            # in the AWS configuration.
            "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
            "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
            "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": self.encryption_key(),
            # MLflow caches the webhook list for 60 s by default: a webhook registered (or
            # re-pointed) while the server runs would miss events for up to a minute. Locally
            # one small query per registry write costs nothing.
            "MLFLOW_WEBHOOK_CACHE_TTL": "0",
            # The job runner forks seven processes we do not use.
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        })
        env.pop("MLFLOW_TRACKING_URI", None)
        return env

    def start(self) -> str:
        """Start the server unless it runs already; wait until it is healthy; return its URL."""
        if self.running():
            procs.wait_http(f"{self.url}/health", HEALTH_TIMEOUT_S, what="MLflow server")
            return self.url
        if procs.port_in_use(self.port, self.host):
            raise RuntimeError(
                f"port {self.port} is taken by another program; stop it, or pick another "
                f"port with MLOPS_MLFLOW_PORT=<port>"
            )
        data = self.settings.mlflow_dir
        (data / "artifacts").mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable, "-m", "mlflow", "server",
            "--backend-store-uri", f"sqlite:///{data / 'mlflow.db'}",
            "--artifacts-destination", str(data / "artifacts"),
            "--host", self.host, "--port", str(self.port), "--workers", "1",
        ]
        proc = self.managed.start(argv, env=self.environment())
        procs.wait_http(f"{self.url}/health", HEALTH_TIMEOUT_S,
                        alive=lambda: proc.poll() is None, what="MLflow server")
        return self.url

    def stop(self) -> bool:
        return self.managed.stop()


def _fernet_key() -> str:
    import base64

    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
