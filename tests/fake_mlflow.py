"""A small MLflow REST server over real HTTPS with basic auth, backed by :class:`FakeRegistry`.

The AWS code talks to MLflow through :class:`~mlops_control.registry.RegistryClient` over
HTTPS only (the Lambdas refuse plain http), with credentials from Secrets Manager. This
server lets the tests keep that whole path real: TLS (a self-signed certificate the client
trusts through ``SSL_CERT_FILE``), the ``Authorization`` header, JSON over the wire, MLflow's
error shapes. It implements only the REST calls the control centre makes.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import ssl
import threading
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from mlops_control.errors import NotFound
from tests.fakes import FakeRegistry

API = "/api/2.0/mlflow"


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, written to ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake-mlflow")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = folder / "mlflow-cert.pem", folder / "mlflow-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


@dataclass
class FakeMlflowServer:
    """``registry`` holds the data; flip ``down`` to answer 503 to everything."""

    registry: FakeRegistry
    username: str
    password: str
    down: bool = False
    webhooks: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""

    # --- the REST API ---------------------------------------------------------------------
    def handle(self, method: str, path: str, query: dict[str, str], body: dict[str, Any]
               ) -> tuple[int, Any]:
        reg = self.registry
        if method == "GET" and path == f"{API}/model-versions/get":
            return 200, {"model_version": self._mv(query["name"], query["version"])}
        if method == "GET" and path == f"{API}/model-versions/search":
            name = query.get("filter", "").partition("'")[2].rstrip("'")
            return 200, {"model_versions": [self._mv(n, v) for (n, v) in reg.versions
                                            if n == name]}
        if method == "GET" and path == f"{API}/registered-models/search":
            return 200, {"registered_models": [{"name": n}
                                               for n in reg.registered_model_names()]}
        if method == "POST" and path == f"{API}/model-versions/set-tag":
            self._mv(body["name"], body["version"])
            reg.set_tag(body["name"], body["version"], body["key"], body["value"])
            return 200, {}
        if method == "DELETE" and path == f"{API}/model-versions/delete-tag":
            self._mv(body["name"], body["version"])
            if body["key"] not in reg.tags(body["name"], body["version"]):
                raise NotFound(f"no tag {body['key']}", 404)
            reg.delete_tag(body["name"], body["version"], body["key"])
            return 200, {}
        if method == "DELETE" and path == f"{API}/model-versions/delete":
            self._mv(body["name"], body["version"])
            del reg.versions[(body["name"], body["version"])]
            return 200, {}
        if method == "GET" and path == f"{API}/model-versions/get-download-uri":
            self._mv(query["name"], query["version"])
            return 200, {"artifact_uri": reg.download_uri(query["name"], query["version"])}
        if method == "GET" and path == "/get-artifact":
            return 200, reg.run_artifact(query["run_uuid"], query["path"])
        if path == f"{API}/webhooks" and method == "GET":
            return 200, {"webhooks": [self._public(h) for h in self.webhooks.values()]}
        if path == f"{API}/webhooks" and method == "POST":
            hook = {**body, "webhook_id": uuid.uuid4().hex}
            self.webhooks[hook["webhook_id"]] = hook
            return 200, {"webhook": self._public(hook)}
        if path.startswith(f"{API}/webhooks/") and method == "PATCH":
            hook_id = path.rsplit("/", 1)[1]
            if hook_id not in self.webhooks:
                raise NotFound(f"no webhook {hook_id}", 404)
            self.webhooks[hook_id].update(body)
            return 200, {"webhook": self._public(self.webhooks[hook_id])}
        return 404, {"error_code": "ENDPOINT_NOT_FOUND", "message": f"{method} {path}"}

    def _mv(self, name: str, version: str) -> dict[str, Any]:
        mv = self.registry.get_model_version(name, version)
        return {"name": mv.name, "version": mv.version, "run_id": mv.run_id,
                "source": mv.source, "status": mv.status,
                "creation_timestamp": mv.creation_timestamp,
                "tags": [{"key": k, "value": v} for k, v in mv.tags.items()]}

    @staticmethod
    def _public(hook: dict[str, Any]) -> dict[str, Any]:
        # MLflow never returns a webhook's secret.
        return {k: v for k, v in hook.items() if k != "secret"}

    def authorized(self, header: str | None) -> bool:
        token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return header == f"Basic {token}"


def _handler_for(server: FakeMlflowServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet: pytest shows failures anyway
            pass

        def _serve(self, method: str) -> None:
            parsed = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(parsed.query))
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            server.requests.append((method, parsed.path))
            if server.down:
                return self._reply(503, {"error_code": "TEMPORARILY_UNAVAILABLE",
                                         "message": "MLflow is down (test)"})
            if not server.authorized(self.headers.get("Authorization")):
                return self._reply(401, {"error_code": "UNAUTHENTICATED",
                                         "message": "You are not authenticated."})
            try:
                status, payload = server.handle(method, parsed.path, query,
                                                json.loads(raw) if raw else {})
            except NotFound as exc:
                status, payload = 404, {"error_code": "RESOURCE_DOES_NOT_EXIST",
                                        "message": str(exc)}
            self._reply(status, payload)

        def _reply(self, status: int, payload: Any) -> None:
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_PATCH(self) -> None:
            self._serve("PATCH")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

    return Handler


@contextmanager
def running(registry: FakeRegistry, folder: Path, username: str = "admin",
            password: str = "mlflow-password") -> Iterator[FakeMlflowServer]:
    """Serve ``registry`` on ``https://127.0.0.1:<free port>`` until the block ends. The
    caller makes the client trust the certificate (``SSL_CERT_FILE=<folder>/mlflow-cert.pem``).
    """
    cert, key = self_signed_certificate(folder)
    fake = FakeMlflowServer(registry=registry, username=username, password=password)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(fake))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    fake.url = f"https://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        httpd.shutdown()
        httpd.server_close()
