"""Start MLflow with basic auth on PostgreSQL and S3, then point its webhook at the control
plane's Function URL (idempotently), and stay in the foreground with the server.

Everything arrives as environment variables (secrets injected by ECS from Secrets Manager):
DB_HOST DB_PORT DB_NAME DB_USER DB_PASSWORD, ARTIFACTS_DESTINATION, ADMIN_USERNAME
ADMIN_PASSWORD, FLASK_SECRET_KEY, WEBHOOK_KEY_SOURCE, WEBHOOK_URL, WEBHOOK_SECRET, and
MLFLOW_PUBLIC_HOSTS: the names clients reach the server by (the domain, the ALB's DNS name).

MLflow's security middleware answers 403 to any request whose Host header is not localhost
or a private address, unless ``--allowed-hosts`` lists it; behind the ALB every client's Host
is the domain. Likewise a browser's state-changing request from the UI carries an Origin that
``--cors-allowed-origins`` must list, or MLflow refuses it as cross-origin.
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
        server_command(db, env("ARTIFACTS_DESTINATION"),
                       env("MLFLOW_PUBLIC_HOSTS").split(",")), env=child_env)
    try:
        wait_healthy(server)
        register_webhook()
    except Exception as exc:  # the server keeps running; the webhook is retried next start
        print(f"entrypoint: webhook registration failed: {exc}", file=sys.stderr, flush=True)
    sys.exit(server.wait())


def server_command(backend_store_uri: str, artifacts_destination: str,
                   public_hosts: list[str], port: int = PORT) -> list[str]:
    """The ``mlflow server`` command line: basic auth, proxied artifacts, and the security
    middleware told the public names (``security_options``)."""
    return ["mlflow", "server", "--host", "0.0.0.0", "--port", str(port),
            "--backend-store-uri", backend_store_uri, "--serve-artifacts",
            "--artifacts-destination", artifacts_destination, "--app-name", "basic-auth",
            *security_options(public_hosts, port)]


def security_options(public_hosts: list[str], port: int = PORT) -> list[str]:
    """``--allowed-hosts``: each public name, bare and with :443 (clients may send either), as
    given and in lower case (MLflow compares exactly; ALB names carry capitals), and this
    container's own loopback names on its port (``call`` below; the list replaces MLflow's
    default of localhost and private addresses). ``--cors-allowed-origins``: the UI's https
    origins. /health stays exempt, as MLflow keeps it for load-balancer checks."""
    names = list(dict.fromkeys(form for h in public_hosts if h.strip()
                               for form in (h.strip(), h.strip().lower())))
    if not names:
        sys.exit("entrypoint: MLFLOW_PUBLIC_HOSTS names no host")
    hosts = [*names, *(f"{h}:443" for h in names), f"localhost:{port}", f"127.0.0.1:{port}"]
    return ["--allowed-hosts", ",".join(hosts),
            "--cors-allowed-origins", ",".join(f"https://{h}" for h in names)]


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
