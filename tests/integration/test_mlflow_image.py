"""The MLflow stack's server command (mlflow_image/entrypoint.py) run for real: behind the ALB
every request carries the public name as its Host header, which MLflow 3's security
middleware refuses unless the command lists it.

Given the entrypoint's own ``server_command`` (basic auth, proxied artifacts, the security
options), with SQLite standing in for PostgreSQL, the loopback address for 0.0.0.0 and one worker
for four (the Host check depends on none of them), when a client sends ``Host: <domain>`` as the ALB
forwards it, then MLflow answers; the same command without the security options (the
command before the fix) answers 403 to everything but /health.
"""

from __future__ import annotations

import base64
import http.client
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mlops_control import procs
from tests.live import free_block

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DOMAIN = "mlflow.example.com"
ALB_DNS = "MlopsM-Servi-AbCdEf123456-1234567890.eu-west-1.elb.amazonaws.com"  # as AWS names it
ADMIN = ("admin", "s3cret-for-the-test")


def load_entrypoint():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("mlflow_entrypoint",
                                                  REPO / "mlflow_image" / "entrypoint.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


entrypoint = load_entrypoint()


def start(root: Path, port: int, *, with_security_options: bool) -> subprocess.Popen[bytes]:
    root.mkdir()
    auth_db = f"sqlite:///{root / 'auth.db'}"
    ini = root / "basic_auth.ini"
    ini.write_text("[mlflow]\ndefault_permission = READ\n"
                   f"database_uri = {auth_db}\nadmin_username = {ADMIN[0]}\n"
                   f"admin_password = {ADMIN[1]}\n"
                   "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
    command = entrypoint.server_command(f"sqlite:///{root / 'mlflow.db'}",
                                        str(root / "artifacts"), [DOMAIN, ALB_DNS], port)
    if not with_security_options:
        command = command[:command.index("--allowed-hosts")]
    command[command.index("--host") + 1] = "127.0.0.1"
    command += ["--workers", "1"]  # the task's four workers each check Host alike
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(MLFLOW_AUTH_CONFIG_PATH=str(ini), MLFLOW_FLASK_SERVER_SECRET_KEY="x" * 32,
               MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    log = open(root / "server.log", "wb")  # noqa: SIM115 - handed to the child
    try:
        return subprocess.Popen([sys.executable, "-m", "mlflow", *command[1:]], env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                cwd=root)
    finally:
        log.close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, int]]:
    """Two servers started together: the entrypoint's command, and that command without its
    security options (as it was before)."""
    base = free_block(2)
    root = tmp_path_factory.mktemp("mlflow-image")
    ports = {"fixed": base, "unfixed": base + 1}
    started = {name: start(root / name, port, with_security_options=name == "fixed")
               for name, port in ports.items()}
    try:
        for name, proc in started.items():
            procs.wait_http(f"http://127.0.0.1:{ports[name]}/health", 180,
                            alive=lambda proc=proc: proc.poll() is None,
                            what=f"MLflow ({name}); log in {root / name / 'server.log'}")
        yield ports
    finally:
        for proc in started.values():
            procs.stop_group(proc.pid)


def ask(port: int, host: str, method: str = "GET",
        path: str = "/api/2.0/mlflow/experiments/search?max_results=1",
        body: dict | None = None, origin: str | None = None) -> tuple[int, bytes]:
    headers = {"Host": host, "Authorization": "Basic " + base64.b64encode(
        ":".join(ADMIN).encode()).decode(), "Content-Type": "application/json"}
    if origin:
        headers["Origin"] = origin
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@pytest.mark.parametrize("host", [DOMAIN, f"{DOMAIN}:443", ALB_DNS, ALB_DNS.lower()])
def test_the_server_answers_requests_that_arrive_by_its_public_names(servers, host):
    status, body = ask(servers["fixed"], host)
    assert status == 200, body[:200]
    assert "experiments" in json.loads(body)


def test_the_entrypoints_own_loopback_calls_still_pass(servers):
    """register_webhook() calls http://127.0.0.1:<port>: --allowed-hosts replaces MLflow's
    default list, so the loopback name must be on it."""
    port = servers["fixed"]
    status, body = ask(port, f"127.0.0.1:{port}", path="/api/2.0/mlflow/webhooks?max_results=1")
    assert status == 200, body[:200]


def test_any_other_host_is_still_refused(servers):
    status, body = ask(servers["fixed"], "attacker.example")
    assert status == 403 and b"Invalid Host header" in body


def test_the_ui_origin_may_change_state_and_another_origin_may_not(servers):
    port = servers["fixed"]
    status, body = ask(port, DOMAIN, "POST", "/api/2.0/mlflow/experiments/create",
                       {"name": "from-the-ui"}, origin=f"https://{DOMAIN}")
    assert status == 200, body[:200]
    status, body = ask(port, DOMAIN, "POST", "/api/2.0/mlflow/experiments/create",
                       {"name": "from-elsewhere"}, origin="https://attacker.example")
    assert status == 403, body[:200]


def test_without_the_security_options_every_call_but_health_is_refused(servers):
    """The command before the fix: what the ALB's clients got."""
    port = servers["unfixed"]
    status, body = ask(port, DOMAIN)
    assert status == 403 and b"Invalid Host header" in body
    assert ask(port, DOMAIN, path="/health")[0] == 200


def test_the_image_installs_what_its_basic_auth_app_needs():
    """`--app-name basic-auth` refuses to start without Flask-WTF (mlflow's `auth` extra); the
    image pins the one these tests ran the app with."""
    from importlib.metadata import version

    dockerfile = (REPO / "mlflow_image" / "Dockerfile").read_text()
    assert '"mlflow[auth]==${MLFLOW_VERSION}"' in dockerfile
    assert f'"Flask-WTF=={version("Flask-WTF")}"' in dockerfile
