"""``mlops``: the control centre's command line. ``mlops --help`` lists every command."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from mlops_control import names
from mlops_control import settings as settings_mod
from mlops_control.errors import ControlCentreError

app = typer.Typer(
    help="MLOps control centre: train, track, deploy, monitor and retire models with MLflow.",
    no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
)
server_app = typer.Typer(help="The local MLflow server (SQLite, 127.0.0.1).", no_args_is_help=True)
app.add_typer(server_app, name="server")


def _settings() -> settings_mod.Settings:
    try:
        return settings_mod.load()
    except ValueError as exc:
        raise ControlCentreError(str(exc)) from None


def tracking_uri(settings: settings_mod.Settings, start: bool = True) -> str:
    """The MLflow server to use: ``MLFLOW_TRACKING_URI`` if set, else the embedded one."""
    if settings.tracking_uri:
        return settings.tracking_uri
    from mlops_control.local_server import LocalMLflow

    server = LocalMLflow(settings)
    if server.running():
        return server.url
    if not start:
        raise ControlCentreError(
            "no MLflow server: start one with `make mlflow-server` or set MLFLOW_TRACKING_URI"
        )
    say(f"starting the local MLflow server on {server.url} ...")
    return server.start()


def say(message: str) -> None:
    typer.secho(message, fg=typer.colors.CYAN, err=True)


# --- projects -----------------------------------------------------------------------------
@app.command()
def validate(
    projects: Annotated[list[str] | None, typer.Argument(
        help="project folder names (default: every project)")] = None,
) -> None:
    """Check projects against the model contract (MLproject, data.py, get_data())."""
    from mlops_control import contract

    settings = _settings()
    chosen = projects or sorted(p.name for p in settings.projects_dir.iterdir() if p.is_dir())
    failed = 0
    for name in chosen:
        folder = Path(name) if "/" in name else settings.projects_dir / name
        try:
            valid = contract.validate(folder)
        except ControlCentreError as exc:
            failed += 1
            typer.secho(f"✗ {exc}", fg=typer.colors.RED, err=True)
            continue
        typer.secho(f"✓ {valid.name}: contract honoured (test slice of {valid.test_rows} rows)",
                    fg=typer.colors.GREEN)
    if failed:
        raise typer.Exit(1)


@app.command()
def train(
    project: Annotated[str, typer.Argument(help="project folder name under projects/")],
    register: Annotated[bool, typer.Option(
        help="register a new model version; --no-register trains on the test slice "
             "(TEST_ENV=True) and registers nothing")] = True,
    data: Annotated[str | None, typer.Option(
        help="train on this CSV/Parquet file or folder (local path or s3:// URI)")] = None,
    param: Annotated[list[str] | None, typer.Option(
        "--param", "-P", help="entry point parameter, name=value (repeatable)")] = None,
    timeout: Annotated[float, typer.Option(help="seconds before the job is stopped")] = 3600.0,
) -> None:
    """Train a project with the shared training entrypoint (as SageMaker would run it)."""
    from mlops_control import local_training

    settings = _settings()
    params = {}
    for item in param or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ControlCentreError(f"--param {item!r} is not name=value")
        params[key] = value
    uri = tracking_uri(settings)
    started = time.monotonic()
    result = local_training.run(settings, uri, local_training.LocalTrainingJob(
        project=project, register=register, data_location=data, params=params,
        timeout_s=timeout))
    took = time.monotonic() - started
    metrics = ", ".join(f"{k}={v:.4g}" for k, v in sorted(result["metrics"].items()))
    versions = ", ".join(result["versions"]) or "none (not registered)"
    typer.echo(f"trained {project} in {took:.1f}s: run {result['run_id']}, "
               f"version {versions}; {metrics}")


# --- serving and scoring ------------------------------------------------------------------
@app.command()
def serve(
    model: Annotated[str, typer.Argument(help="<name>, <name>/latest or <name>/<version>")],
    port: Annotated[int, typer.Option(help="port on 127.0.0.1")] = 5050,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    workers: Annotated[int | None, typer.Option(help="worker processes (default: one per core)")]
    = None,
) -> None:
    """Serve a registered model (blocking; Ctrl-C stops it)."""
    from mlops_control import local_models
    from mlops_control.registry import RegistryClient
    from mlops_control.serving import server

    settings = _settings()
    client = RegistryClient.from_env(tracking_uri(settings))
    name, version = local_models.resolve(client, model)
    model_dir = local_models.download(client, settings.models_dir, name, version)
    say(f"serving {name} version {version} on http://{host}:{port} "
        "(POST /invocations, GET /ping; Ctrl-C stops)")
    server.run(model_dir, host=host, port=port, workers=workers, name=name, version=version)


@app.command()
def predict(
    port: Annotated[int, typer.Option(help="local endpoint port")] = 5050,
    project: Annotated[str, typer.Option(help="project whose test slice is sent")]
    = "test-project",
    rows: Annotated[int, typer.Option(help="how many rows of the test slice to send")] = 5,
) -> None:
    """Send the project's test slice to a local endpoint and print the answer."""
    import urllib.request

    from mlops_control import contract

    settings = _settings()
    valid = contract.validate(settings.projects_dir / project)
    X = valid.X_test.head(rows)
    body = json.dumps({"dataframe_split": {"columns": list(X.columns),
                                           "data": X.values.tolist()}}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            typer.echo(response.read().decode())
    except OSError as exc:
        raise ControlCentreError(
            f"no answer from http://127.0.0.1:{port}/invocations ({exc}); start an endpoint "
            "with `make local-deployment`"
        ) from None


@app.command()
def batch(
    model: Annotated[str, typer.Argument(help="<name>, <name>/latest or <name>/<version>")],
    input_csv: Annotated[Path, typer.Argument(help="CSV with the model's input columns")],
    output_csv: Annotated[Path, typer.Argument(help="where to write the CSV with predictions")],
) -> None:
    """Score a CSV file with a registered model, writing the predictions as a new column."""
    from mlops_control import batch as batch_mod
    from mlops_control import local_models
    from mlops_control.registry import RegistryClient

    settings = _settings()
    client = RegistryClient.from_env(tracking_uri(settings))
    name, version = local_models.resolve(client, model)
    model_dir = local_models.download(client, settings.models_dir, name, version)
    report = batch_mod.score_csv(model_dir, input_csv, output_csv, progress=_every(2.0))
    typer.echo(f"scored {report.rows} rows of {input_csv} with {name}/{version} "
               f"in {report.seconds:.2f}s -> {output_csv}")


def _every(seconds: float) -> Callable[[int], None]:
    """A progress callback that says how many rows are done, at most every ``seconds``."""
    last = time.monotonic()

    def progress(rows: int) -> None:
        nonlocal last
        if time.monotonic() - last >= seconds:
            last = time.monotonic()
            say(f"{rows:,} rows scored ...")

    return progress


@app.command()
def demo(
    keep: Annotated[bool, typer.Option("--keep", help="leave everything running at the end")]
    = False,
) -> None:
    """Run the whole model life cycle on this machine: train, register, deploy, predict,
    retrain, roll back, retire; printing each step and the registry tags after it."""
    from mlops_control.demo import Demo

    Demo(_settings(), keep=keep).run()


# --- the control plane ----------------------------------------------------------------------
@app.command()
def up(
    reconcile_every: Annotated[float, typer.Option(help="seconds between full reconciles")]
    = 30.0,
) -> None:
    """Run the local control centre in the foreground (Ctrl-C stops everything it started).

    MLflow server, webhook receiver, inbox watcher, reconciler and the endpoints: tag a model
    version deploy=production in the MLflow UI and it serves on 127.0.0.1:5050.
    """
    import signal
    import threading

    from mlops_control import logs
    from mlops_control.control_centre import ControlCentre
    from mlops_control.local_server import LocalMLflow

    logs.setup()
    settings = _settings()
    server = LocalMLflow(settings)
    started_server = not settings.tracking_uri and not server.running()
    uri = tracking_uri(settings)
    centre = ControlCentre(settings, uri, reconcile_interval_s=reconcile_every)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        centre.start()
        ports = ", ".join(f"{s} on :{centre.backend.ports.port('<project>', s)}"
                          for s in sorted(centre.stages, key=lambda x: x != "production"))
        say(f"control centre up. MLflow UI: {uri}  |  webhooks: {centre.receiver.url}  |  "
            f"inbox: {settings.inbox_dir}/<project>/  |  status: "
            f"http://127.0.0.1:{centre.receiver.port}/status")
        say(f"endpoints (first project): {ports}. Ctrl-C stops everything.")
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        say("stopping the control centre and its endpoints ...")
        centre.stop()
        if started_server:
            server.stop()


webhook_app = typer.Typer(help="The control centre's webhook on the MLflow server.",
                          no_args_is_help=True)
app.add_typer(webhook_app, name="webhook")


@webhook_app.command("register")
def webhook_register(
    url: Annotated[str | None, typer.Option(
        help="where MLflow should deliver events (default: the local receiver)")] = None,
) -> None:
    """Register (or update) the control centre's webhook on the MLflow server, idempotently.

    The secret comes from MLOPS_WEBHOOK_SECRET, or from the state folder; it is never printed.
    """
    from mlops_control import webhooks
    from mlops_control.registry import RegistryClient

    settings = _settings()
    client = RegistryClient.from_env(tracking_uri(settings))
    target = url or f"http://127.0.0.1:{settings.receiver_port}/webhooks/mlflow"
    registration = webhooks.ensure(client, target, webhooks.local_secret(settings.secrets_dir))
    verb = "created" if registration.created else "updated"
    typer.echo(f"webhook {registration.webhook_id} {verb}: {client.tracking_uri} -> {target}")


@app.command()
def deploy(
    model: Annotated[str, typer.Argument(help="<name>/<version> (or <name>/latest)")],
    stage: Annotated[str, typer.Option(help="stage to serve at")] = "production",
) -> None:
    """Tag a version deploy=<stage> (what you would do in the MLflow UI)."""
    _set_tag(model, "deploy", stage)


@app.command()
def deprecate(
    model: Annotated[str, typer.Argument(help="<name>/<version>")],
) -> None:
    """Tag a version deprecated=true: it may no longer serve (a live one is rolled back)."""
    _set_tag(model, "deprecated", "true")


def _set_tag(model: str, key: str, value: str) -> None:
    from mlops_control import local_models
    from mlops_control.registry import RegistryClient

    settings = _settings()
    client = RegistryClient.from_env(tracking_uri(settings, start=False))
    name, version = local_models.resolve(client, model)
    client.set_tag(name, version, key, value)
    typer.echo(f"{name} version {version}: {key}={value}")


@app.command()
def status(
    model: Annotated[str, typer.Argument(help="registered model name")] = "test-project",
) -> None:
    """Print every version of a model with its control tags."""
    from mlops_control.registry import RegistryClient

    settings = _settings()
    client = RegistryClient.from_env(tracking_uri(settings, start=False))
    from mlops_control.registry_view import format_versions

    typer.echo(format_versions(client.model_versions(model)))


# --- the local MLflow server --------------------------------------------------------------
@server_app.command("start")
def server_start() -> None:
    """Start the local MLflow server in the background (idempotent)."""
    from mlops_control.local_server import LocalMLflow

    server = LocalMLflow(_settings())
    was_running = server.running()
    url = server.start()
    typer.echo(f"MLflow {'was already running' if was_running else 'is running'} at {url} "
               f"(UI and REST API); logs: {server.managed.log_file}")


@server_app.command("stop")
def server_stop() -> None:
    """Stop the local MLflow server started by `mlops server start`."""
    from mlops_control.local_server import LocalMLflow

    stopped = LocalMLflow(_settings()).stop()
    typer.echo("MLflow server stopped" if stopped else "no local MLflow server was running")


@server_app.command("status")
def server_status() -> None:
    """Say whether the local MLflow server runs, and where."""
    from mlops_control.local_server import LocalMLflow

    server = LocalMLflow(_settings())
    if server.running():
        typer.echo(f"running at {server.url}")
    else:
        typer.echo("not running")
        raise typer.Exit(1)


def main() -> None:
    try:
        app()
    except ControlCentreError as exc:
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except OSError as exc:
        # A disk problem (state folder not writable, disk full...): the file and the reason,
        # not a traceback.
        where = f": {exc.filename}" if exc.filename else ""
        state = Path(os.environ.get(names.ENV_STATE_DIR, "state")).resolve()
        typer.secho(f"error: {exc.strerror or exc}{where} (the state folder is {state}; "
                    "MLOPS_STATE_DIR moves it)", fg=typer.colors.RED, err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
