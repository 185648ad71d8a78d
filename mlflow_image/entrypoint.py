"""Start MLflow with basic auth on PostgreSQL and S3, then point its webhook at the control
plane's Function URL (idempotently), and stay in the foreground with the server.

Everything arrives as environment variables (secrets injected by ECS from Secrets Manager):
DB_HOST DB_PORT DB_NAME DB_USER DB_PASSWORD, ARTIFACTS_DESTINATION, ADMIN_USERNAME
ADMIN_PASSWORD, FLASK_SECRET_KEY, WEBHOOK_KEY_SOURCE, WEBHOOK_URL, WEBHOOK_SECRET.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.parse
import urllib.request

PORT = 5000
EVENTS = [("model_version", "created"), ("model_version_tag", "set"),
          ("model_version_tag", "deleted")]
WEBHOOK_NAME = "mlops-control-centre"


def env(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        sys.exit(f"entrypoint: {name} is not set")
    return value


def main() -> None:
    db = (f"postgresql://{urllib.parse.quote(env('DB_USER'))}:"
          f"{urllib.parse.quote(env('DB_PASSWORD'))}@{env('DB_HOST')}:{env('DB_PORT')}/"
          f"{env('DB_NAME')}")
    auth_ini = "/tmp/basic_auth.ini"
    with open(auth_ini, "w") as ini:
        ini.write("[mlflow]\ndefault_permission = READ\n"
                  f"database_uri = {db}\nadmin_username = {env('ADMIN_USERNAME')}\n"
                  f"admin_password = {env('ADMIN_PASSWORD')}\n"
                  "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    os.chmod(auth_ini, 0o600)
    # A stable Fernet key derived from a stable secret: webhook secrets stored by MLflow stay
    # readable across task restarts and deployments.
    fernet = base64.urlsafe_b64encode(hashlib.sha256(env("WEBHOOK_KEY_SOURCE").encode()).digest())
    child_env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": auth_ini,
                 "MLFLOW_FLASK_SERVER_SECRET_KEY": env("FLASK_SECRET_KEY"),
                 "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": fernet.decode()}
    for secret in ("DB_PASSWORD", "ADMIN_PASSWORD", "WEBHOOK_SECRET", "WEBHOOK_KEY_SOURCE"):
        child_env.pop(secret, None)
    server = subprocess.Popen(
        ["mlflow", "server", "--host", "0.0.0.0", "--port", str(PORT),
         "--backend-store-uri", db, "--serve-artifacts",
         "--artifacts-destination", env("ARTIFACTS_DESTINATION"), "--app-name", "basic-auth"],
        env=child_env)
    try:
        wait_healthy(server)
        register_webhook()
    except Exception as exc:  # the server keeps running; the webhook is retried next start
        print(f"entrypoint: webhook registration failed: {exc}", file=sys.stderr, flush=True)
    sys.exit(server.wait())


def wait_healthy(server: subprocess.Popen[bytes], timeout_s: float = 300) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(server.returncode)
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{PORT}/health", timeout=2)
            return
        except OSError:
            time.sleep(2)
    raise TimeoutError("MLflow did not become healthy")


def call(method: str, path: str, body: dict | None = None) -> dict:
    pair = f"{env('ADMIN_USERNAME')}:{env('ADMIN_PASSWORD')}".encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{PORT}{path}", method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json",
                 "Authorization": "Basic " + base64.b64encode(pair).decode()})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"{}")


def register_webhook() -> None:
    """Create the control centre's webhook, or update it to the current URL and secret."""
    body = {"name": WEBHOOK_NAME, "url": env("WEBHOOK_URL"), "secret": env("WEBHOOK_SECRET"),
            "events": [{"entity": e, "action": a} for e, a in EVENTS], "status": "ACTIVE"}
    hooks = call("GET", "/api/2.0/mlflow/webhooks?max_results=100").get("webhooks", [])
    existing = [h for h in hooks if h.get("name") == WEBHOOK_NAME]
    if existing:
        call("PATCH", f"/api/2.0/mlflow/webhooks/{existing[0]['webhook_id']}", body)
    else:
        call("POST", "/api/2.0/mlflow/webhooks", body)
    print(f"entrypoint: webhook {WEBHOOK_NAME} -> {body['url']}", flush=True)


if __name__ == "__main__":
    main()
