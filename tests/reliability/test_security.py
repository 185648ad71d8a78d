"""No one let in, nothing given away: the webhook secret never reaches a log or a terminal,
no secret is committed, names and tags that try to leave their folder or inject are
refused, every HTTP entry point has a size limit, and local servers listen on 127.0.0.1."""

from __future__ import annotations

import math
import os
import re
import secrets
import signal
import stat
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import psutil
import pytest

from mlops_control import events, local_models, names, procs, receiver
from mlops_control.errors import ControlCentreError
from mlops_control.serving import config as serving_config
from tests.live import free_block, wait_until
from tests.reliability import figures
from tests.reliability.conftest import Registered, http_post, running_centre, signed, tag_body

REPO = Path(__file__).resolve().parents[2]
KEY = "security"


# --- the webhook secret never logged or printed --------------------------------------------
def listening(pid: int) -> set[str]:
    """Addresses the process and its children listen on."""
    found = set()
    parent = psutil.Process(pid)
    for proc in (parent, *parent.children(recursive=True)):
        try:
            connections = proc.net_connections(kind="inet")
        except psutil.Error:
            continue
        for conn in connections:
            if conn.status == psutil.CONN_LISTEN:
                found.add(conn.laddr.ip)
    return found


@pytest.mark.integration
def test_the_webhook_secret_is_in_no_log_and_no_output_and_servers_bind_to_loopback(
        tmp_path, rel_mlflow, sources):
    secret = "whsec-" + secrets.token_urlsafe(30)
    state = tmp_path / "state"
    base = free_block()
    env = {**os.environ, names.ENV_WEBHOOK_SECRET: secret, names.ENV_STATE_DIR: str(state),
           names.ENV_TRACKING_URI: rel_mlflow.url,
           "MLOPS_RECEIVER_PORT": str(procs.free_port()), "MLOPS_ENDPOINT_PORT": str(base)}
    out = tmp_path / "up.out"
    model = Registered(rel_mlflow.url, f"sec-{uuid.uuid4().hex[:6]}", sources)
    with open(out, "wb") as sink:
        up = subprocess.Popen([sys.executable, "-m", "mlops_control", "up"], stdout=sink,
                              stderr=subprocess.STDOUT, env=env, cwd=REPO,
                              start_new_session=True)
    outputs: list[str] = []
    try:
        wait_until(lambda: b"control centre up" in out.read_bytes() or up.poll() is not None,
                   "mlops up", timeout=120)
        v1 = model.new_version(sources.zero)
        deploy = subprocess.run([sys.executable, "-m", "mlops_control", "deploy",
                                 f"{model.name}/{v1}", "--stage", "production"], env=env,
                                capture_output=True, text=True, timeout=120, cwd=REPO)
        outputs += [deploy.stdout, deploy.stderr]
        wait_until(model.has_status(v1, "in_service"), "v1 in service through mlops up")
        receiver_url = f"http://127.0.0.1:{env['MLOPS_RECEIVER_PORT']}/webhooks/mlflow"
        body = tag_body(model.name, v1, "deploy", "production")
        # Refused deliveries are logged with their reason: still no secret.
        assert http_post(receiver_url, body, signed("wrong-secret", body))[0] == 401
        assert http_post(receiver_url, body, signed(secret, body, ts=1))[0] == 401
        for argv in (["webhook", "register"], ["status", model.name],
                     ["server", "status"], ["--help"]):
            run = subprocess.run([sys.executable, "-m", "mlops_control", *argv], env=env,
                                 capture_output=True, text=True, timeout=120, cwd=REPO)
            outputs += [run.stdout, run.stderr]
        addresses = listening(up.pid) | {
            address for pid_file in (state / "run" / "endpoints").glob("*.pid")
            for address in listening(int(pid_file.read_text().split()[0]))}
        mlflow_pid = int((rel_mlflow.settings.run_dir / "mlflow.pid").read_text().split()[0])
        addresses |= listening(mlflow_pid)
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(timeout=60)
        except subprocess.TimeoutExpired:
            procs.stop_group(up.pid, timeout=5)
        model.delete()
    texts = {"mlops up": out.read_text(errors="replace"), "commands": "\n".join(outputs)}
    for log in state.rglob("*.log"):
        texts[str(log.relative_to(state))] = log.read_text(errors="replace")
    assert "webhook rejected" in texts["mlops up"] and "signature" in texts["mlops up"]
    leaks = [where for where, text in texts.items() if secret in text]
    assert leaks == [], f"the webhook secret appears in {leaks}"
    assert addresses == {"127.0.0.1"}, addresses
    figures.record(KEY, logs_and_outputs_scanned=len(texts), secret_leaks=0,
                   listening_addresses=sorted(addresses))


def test_a_generated_secret_is_private_and_never_printed(tmp_path):
    env = {**os.environ, names.ENV_STATE_DIR: str(tmp_path / "state"),
           names.ENV_TRACKING_URI: "http://127.0.0.1:9"}
    env.pop(names.ENV_WEBHOOK_SECRET, None)
    run = subprocess.run([sys.executable, "-m", "mlops_control", "webhook", "register"],
                         env=env, capture_output=True, text=True, timeout=120, cwd=REPO)
    file = tmp_path / "state" / "secrets" / "webhook-secret"
    assert run.returncode == 2 and "unreachable" in run.stderr  # no MLflow there
    generated = file.read_text().strip()
    assert len(generated) >= 40
    assert stat.S_IMODE(file.stat().st_mode) == 0o600
    assert generated not in run.stdout + run.stderr


# --- no secret committed -------------------------------------------------------------------
PATTERNS = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN (RSA |EC |OPENSSH |DSA )?PRIVATE KEY-----"),
    "GitHub token": re.compile(r"\b(ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b|github_pat_\w{22,}"),
    "Slack token": re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"),
    "Stripe key": re.compile(r"\b[sr]k_live_[0-9A-Za-z]{20,}"),
    "JWT": re.compile(r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"),
}
ASSIGNED = re.compile(
    r"(?i)(secret|password|passwd|token|api[_-]?key|access[_-]?key)[\w.-]*"
    r"\s*[:=]\s*[\"']([^\"'\s]{16,})[\"']")
NOT_SECRETS = {"webhook-secret-for-tests", "integration-secret-value", "fuzz-secret-value",
               "s3cret-for-tests", "not-the-secret"}


def entropy(text: str) -> float:
    counts = Counter(text)
    return -sum(n / len(text) * math.log2(n / len(text)) for n in counts.values())


def test_no_secret_is_committed():
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                             check=True).stdout.decode().split("\0")
    findings = []
    scanned = 0
    for name in filter(None, tracked):
        path = REPO / name
        if not path.is_file() or path.stat().st_size > 2_000_000:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue  # binary
        scanned += 1
        for kind, pattern in PATTERNS.items():
            findings += [f"{name}: {kind}" for _ in pattern.finditer(text)]
        for match in ASSIGNED.finditer(text):
            value = match.group(2)
            if value in NOT_SECRETS or "EXAMPLE" in value \
                    or value.startswith(("${", "{", "$(", "<")) \
                    or ("." in value and not any(c.isdigit() for c in value)):
                continue
            if entropy(value) > 4.0 and any(c.isdigit() for c in value) \
                    and any(c.isalpha() for c in value):
                findings.append(f"{name}: {match.group(1)} = {value[:6]}...")
    figures.record(KEY, tracked_files_scanned=scanned, committed_secrets=len(findings))
    assert findings == []


def test_the_scan_would_find_a_committed_key():
    fake = "AKIA" + "ABCDEFGHIJKLMNOP"
    assert PATTERNS["AWS access key id"].search(f"key = {fake}")
    match = ASSIGNED.search('aws_secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY9"')
    assert match and entropy(match.group(2)) > 4.0


# --- names and tags that try to leave their folder or inject ------------------------------
@pytest.mark.integration
def test_odd_model_names_and_stage_values_are_refused_and_create_nothing(
        tmp_path, rel_mlflow, sources):
    with running_centre(rel_mlflow.url, tmp_path / "state") as centre:
        odd = [Registered(rel_mlflow.url, name, sources)
               for name in (f"odd name;{uuid.uuid4().hex[:4]}", f"Odd_{uuid.uuid4().hex[:4]}",
                            "x" * 200 + uuid.uuid4().hex[:4])]
        fine = Registered(rel_mlflow.url, f"stage-{uuid.uuid4().hex[:6]}", sources)
        try:
            for model in odd:
                version = model.new_version(sources.zero)
                model.tag(version, "deploy", "production")
            v1 = fine.new_version(sources.zero)
            fine.tag(v1, "deploy", "../../etc")
            wait_until(fine.has_status(v1, "failed"), "the odd stage refused")
            assert centre.wait_idle(60)
            message = fine.tags(v1)[names.TAG_MESSAGE]
            assert "unknown stage '../../etc'" in message and "deploy" not in fine.tags(v1)
            assert names.TAG_ENDPOINT not in fine.tags(v1)
            for model in odd:
                assert names.TAG_STATUS not in model.tags("1")  # not even touched
            assert centre.backend.records() == []
            state = centre.settings.state_dir
            made = [p.name for p in state.rglob("*") if "etc" in p.name or ";" in p.name
                    or "Odd_" in p.name or "xxxxxxxx" in p.name]
            assert made == []
            assert not (state.parent / "etc").exists()
        finally:
            for model in [*odd, fine]:
                model.delete()
    figures.add(KEY, "odd_names_and_stages_refused", 4)


def test_model_references_that_leave_the_models_folder_are_refused():
    for ref in ("../1", "../../x/1", "x/../1", "..\\x/1", "./1", "a/\u00b2", "/", ""):
        with pytest.raises(ControlCentreError):
            local_models.parse_ref(ref)
    assert local_models.parse_ref("models:/test-project/3") == ("test-project", "3")


def test_project_names_that_try_traversal_are_refused_before_training(tmp_path):
    from mlops_control import local_training
    from tests.conftest import make_settings

    settings = make_settings(tmp_path / "state")
    for project in ("../x", "..", "a/b", "X", "a b", "a;b", "-x"):
        with pytest.raises(ControlCentreError):
            local_training.run(settings, "http://127.0.0.1:9",
                               local_training.LocalTrainingJob(project=project), quiet=True)
    assert not (tmp_path / "state" / "jobs").exists()


# --- size limits on every entry point ----------------------------------------------------
def test_every_http_entry_point_has_a_size_limit():
    from lambdas import webhook

    limits = {"receiver": receiver.MAX_BODY, "webhook Lambda": events.MAX_WEBHOOK_BYTES,
              "scoring server": serving_config.ServingConfig().max_body_bytes}
    assert limits["receiver"] == limits["webhook Lambda"] == 64 * 1024
    assert limits["scoring server"] == 6 * 1024 * 1024
    assert webhook.events.MAX_WEBHOOK_BYTES == events.MAX_WEBHOOK_BYTES
    figures.record(KEY, size_limits_bytes=limits)


def test_local_servers_default_to_loopback():
    import inspect

    from mlops_control import cli
    from mlops_control.local_server import LocalMLflow
    from mlops_control.serving import __main__ as serving_main

    assert LocalMLflow.host == "127.0.0.1"
    assert inspect.signature(cli.serve).parameters["host"].default == "127.0.0.1"
    assert "--host\", default=\"127.0.0.1\"" in inspect.getsource(serving_main.main)
    assert "\"127.0.0.1\", settings.receiver_port" in inspect.getsource(
        __import__("mlops_control.control_centre", fromlist=["x"]).ControlCentre.__init__)


def test_the_container_serves_on_all_interfaces_only_inside_sagemaker():
    """The shared image's `serve` binds 0.0.0.0 (SageMaker must reach it); the control centre
    always passes --host 127.0.0.1 when it runs the same entrypoint locally."""
    from types import SimpleNamespace

    from mlops_control.backends.local import LocalBackend

    argv = LocalBackend._serve_argv(SimpleNamespace(workers=None), 5050, None)  # type: ignore[arg-type]
    assert argv[argv.index("--host") + 1] == "127.0.0.1"

