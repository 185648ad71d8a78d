"""``mlops``: the control centre's command line. ``mlops --help`` lists every command."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from mlops_control import names
from mlops_control import settings as settings_mod
from mlops_control.errors import ControlCentreError

if TYPE_CHECKING:
    from mlops_control.registry import RegistryClient
    from mlops_control.remote.outputs import StackOutputs

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


def tracking_uri(settings: settings_mod.Settings, start: bool = True,
                 outlives_command: bool = True) -> str:
    """The MLflow server to use: ``MLFLOW_TRACKING_URI`` if set, else the embedded one
    (started if need be; ``outlives_command=False`` when the caller stops it again)."""
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
    if outlives_command:
        say(f"starting the local MLflow server on {server.url} in the background; it keeps "
            "running after this command (stop it with `make mlflow-server-rm`) ...")
    else:
        say(f"starting the local MLflow server on {server.url}; it stops with this command "
            "...")
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
            # Every problem at once; imports are checked in this interpreter when it is the
            # one the project trains with (MLOPS_ENV_MANAGER=local).
            valid = contract.validate(folder, strict=True,
                                      importable_here=settings.env_manager == "local")
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
    port: Annotated[int | None, typer.Option(
        help="port to listen on (default: MLOPS_ENDPOINT_PORT, else 5050)")] = None,
    host: Annotated[str, typer.Option(help="address to bind")] = "127.0.0.1",
    workers: Annotated[int | None, typer.Option(help="worker processes (default: one per core)")]
    = None,
) -> None:
    """Serve a registered model (blocking; Ctrl-C stops it)."""
    from mlops_control import local_models, model_env
    from mlops_control.registry import RegistryClient
    from mlops_control.serving import server

    settings = _settings()
    port = settings.endpoint_base_port if port is None else port
    client = RegistryClient.from_env(tracking_uri(settings))
    name, version = local_models.resolve(client, model)
    model_dir = local_models.download(client, settings.models_dir, name, version)
    python = model_env.python_for(model_dir, settings.state_dir / "envs", f"{name}/{version}")
    say(f"serving {name} version {version} on http://{host}:{port} "
        "(POST /invocations, GET /ping; Ctrl-C stops)")
    if python != sys.executable:  # the model's own virtualenv (MLOPS_SERVING_ENV_MANAGER)
        argv = [python, "-m", "mlops_control.serving", str(model_dir), "--host", host,
                "--port", str(port), "--name", name, "--version", version]
        os.execv(python, argv + (["--workers", str(workers)] if workers else []))
    server.run(model_dir, host=host, port=port, workers=workers, name=name, version=version)


@app.command()
def predict(
    port: Annotated[int | None, typer.Option(
        help="local endpoint port (default: MLOPS_ENDPOINT_PORT, else 5050)")] = None,
    project: Annotated[str, typer.Option(help="project whose test slice is sent")]
    = "test-project",
    rows: Annotated[int, typer.Option(help="how many rows of the test slice to send")] = 5,
) -> None:
    """Send the project's test slice to a local endpoint and print the answer."""
    import urllib.request

    from mlops_control import contract

    settings = _settings()
    port = settings.endpoint_base_port if port is None else port
    valid = contract.validate(settings.projects_dir / project)
    body = json.dumps(test_request(valid.X_test, rows)).encode()
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


def test_request(X: Any, rows: int) -> dict[str, Any]:
    """The first ``rows`` of a project's test slice as an /invocations body: a DataFrame as
    ``dataframe_split``; a numpy matrix (a tensor signature) as ``instances``, one list per
    row, which is what MLflow's server takes for tensor inputs."""
    if hasattr(X, "to_dict"):
        split = X.head(rows).to_dict(orient="split")
        split.pop("index", None)
        return {"dataframe_split": split}
    import numpy as np

    return {"instances": np.asarray(X)[:rows].tolist()}


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
    uri = tracking_uri(settings, outlives_command=False)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    centre: ControlCentre | None = None
    try:
        # Inside the try: a control centre that cannot be made (a bad MLOPS_STAGES) must
        # still stop the MLflow server this command said stops with it.
        centre = ControlCentre(settings, uri, reconcile_interval_s=reconcile_every)
        centre.start()
        stages = sorted(centre.stages, key=lambda x: (x != "production", x))
        ports = centre.backend.ports.describe(stages)
        say(f"control centre up. MLflow UI: {uri}  |  webhooks: {centre.receiver.url}  |  "
            f"inbox: {settings.inbox_dir}/<project>/  |  status: "
            f"http://127.0.0.1:{centre.receiver.port}/status")
        say(f"endpoints: {ports}. Ctrl-C stops everything.")
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        if centre is not None:
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


# --- AWS: the deployed control plane (docs/aws.md) ------------------------------------------
remote_app = typer.Typer(
    help="The control centre on AWS, after `cdk deploy`: everything is found from the "
         "MlopsControl stack's outputs with your AWS credentials.", no_args_is_help=True)
app.add_typer(remote_app, name="remote")


def _aws(service: str) -> Any:
    import boto3

    return boto3.client(service)


def _region() -> str:
    import boto3

    region = boto3.session.Session().region_name
    if not region:
        raise ControlCentreError("no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION)")
    return str(region)


def _remote() -> tuple[StackOutputs, RegistryClient]:
    from mlops_control.remote import outputs as outputs_mod

    outputs = outputs_mod.load(_aws("cloudformation"))
    return outputs, outputs_mod.registry(outputs, _aws("secretsmanager"))


@remote_app.command("deployment")
def remote_deployment(
    model: Annotated[str, typer.Argument(help="<name>/<version> (or <name>/latest)")],
    stage: Annotated[str, typer.Option(help="stage to serve at")] = "production",
    wait: Annotated[bool, typer.Option(help="follow the status tags until the outcome")]
    = True,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the outcome")] = 3600.0,
) -> None:
    """Deploy a version on SageMaker: tag it deploy=<stage> in MLflow (the control plane does
    the rest) and follow its deployment.status tags."""
    from mlops_control import local_models
    from mlops_control.remote import deployment

    _, registry = _remote()
    name, version = local_models.resolve(registry, model)
    asked = deployment.request(registry, name, version, stage)
    if asked is None:
        typer.echo(f"{name} version {version} already serves {name}-{stage}")
        return
    say(f"{name} version {version}: deploy={stage} set; the control plane deploys it")
    if not wait:
        return
    outcome = deployment.wait(registry, name, version, stage, asked,
                              timeout_s=timeout, progress=say)
    typer.echo(f"{name} version {version}: {outcome.status} ({outcome.message})")
    if outcome.status != "in_service":
        raise typer.Exit(1)


@remote_app.command("rollback")
def remote_rollback(
    project: Annotated[str, typer.Argument(help="registered model / project name")],
    stage: Annotated[str, typer.Option(help="stage to roll back")] = "production",
    timeout: Annotated[float, typer.Option(help="seconds to wait for the outcome")] = 3600.0,
) -> None:
    """Roll back <project>-<stage>: tag the live version deprecated=true; the control plane
    serves the last good version again (or removes the endpoint when there is none)."""
    from mlops_control.remote import deployment

    _, registry = _remote()
    outcome = deployment.rollback(registry, project, stage, timeout_s=timeout, progress=say)
    typer.echo(f"{outcome.endpoint}: {outcome.message}")


@remote_app.command("train")
def remote_train(
    project: Annotated[str, typer.Argument(help="project folder name under projects/")],
    data: Annotated[str | None, typer.Option(
        help="s3:// data to train on (default: the project's whole data prefix)")] = None,
    wait: Annotated[bool, typer.Option(help="wait for the job and print the version")]
    = True,
) -> None:
    """Train on SageMaker through the Train state machine (the shared image, the project's
    data prefix, lineage and promotion gate as for new data, trigger=manual)."""
    from mlops_control import names
    from mlops_control.remote import training

    outputs, registry = _remote()
    sfn = _aws("stepfunctions")
    arn, body = training.start(sfn, outputs, project, time.strftime("%Y%m%d%H%M%S"), data)
    say(f"training {project} on {body['data_location']}: job {body['training_job_name']}")
    if not wait:
        typer.echo(arn)
        return
    training.wait(sfn, arn)
    versions = [v.version for v in registry.model_versions(project)
                if v.tags.get(names.TAG_LINEAGE_TRAINING_JOB) == body["training_job_name"]]
    typer.echo(f"trained {project}: version {', '.join(versions) or 'none registered'}")


@remote_app.command("batch-inference")
def remote_batch_inference(
    model: Annotated[str, typer.Argument(help="<name>/<version> (or <name>/latest)")],
    input_uri: Annotated[str, typer.Argument(help="s3:// CSV file or prefix (header rows)")],
    output_uri: Annotated[str | None, typer.Argument(
        help="s3:// prefix for the results (default: the artifact bucket's batch/)")] = None,
    instance_type: Annotated[str, typer.Option(help="transform instance type")]
    = "ml.m5.large",
    wait: Annotated[bool, typer.Option(help="wait for the job, then remove its model")]
    = True,
) -> None:
    """Score CSV files in S3 with SageMaker Batch Transform on the shared image."""
    import uuid

    from mlops_control import local_models
    from mlops_control.backends import sagemaker as sm
    from mlops_control.remote import batch_transform

    outputs, registry = _remote()
    name, version = local_models.resolve(registry, model)
    config = sm.SageMakerConfig(image_uri=outputs.image_uri,
                                role_arn=outputs.sagemaker_role,
                                capture_uri="", region=_region(),
                                artifacts_destination=outputs.artifacts_destination)
    target = output_uri or f"s3://{outputs.artifact_bucket}/batch/{name}/v{version}"
    sagemaker = _aws("sagemaker")
    operation = batch_transform.start(
        sagemaker=sagemaker, registry=registry, config=config,
        project=name, version=version, input_uri=input_uri, output_uri=target,
        token=uuid.uuid4().hex[:8], instance_type=instance_type)
    job = operation.job
    say(f"transform job {job.job_name} started: {input_uri} -> {job.output_uri}")
    if not wait:
        return
    try:
        operation.wait(progress=say)
    finally:
        sagemaker.delete_model(ModelName=job.model_name)
    for written in batch_transform.outputs_written(_aws("s3"), job.output_uri):
        typer.echo(written)
    typer.echo(f"results: {job.output_uri}")


@remote_app.command("monitoring-job")
def remote_monitoring_job(
    project: Annotated[str, typer.Argument(help="project whose endpoint is monitored")],
    baseline: Annotated[str, typer.Option(
        help="s3:// CSV of model inputs with a header row (e.g. a sample of training data "
             "without the target)")],
    stage: Annotated[str, typer.Option(help="stage of the endpoint")] = "production",
    schedule: Annotated[str, typer.Option(help="schedule expression")] = "cron(0 * ? * * *)",
    analyzer_image: Annotated[str | None, typer.Option(
        help="Model Monitor analyzer image (default: AWS's for the region)")] = None,
) -> None:
    """SageMaker Model Monitor data quality on <project>-<stage>: a baseline job on the CSV,
    then a schedule comparing captured requests with it."""
    from mlops_control import names
    from mlops_control.remote import monitoring

    outputs, _ = _remote()
    endpoint = names.endpoint_name(project, stage)
    plan = monitoring.plan(endpoint, outputs.artifact_bucket, baseline,
                           time.strftime("%Y%m%d%H%M%S"))
    image = analyzer_image or monitoring.analyzer_image(_region())
    role = outputs.sagemaker_role
    sagemaker = _aws("sagemaker")
    operation = monitoring.start_baseline(sagemaker=sagemaker, s3=_aws("s3"), p=plan,
                                          image=image, role_arn=role)
    say(f"baseline job {plan.baseline_job} on {baseline} ...")
    operation.wait(progress=say)
    arn = monitoring.schedule(sagemaker=sagemaker, p=plan, image=image, role_arn=role,
                              cron=schedule)
    typer.echo(f"monitoring schedule {arn} ({schedule}); baseline {plan.baseline_uri}; "
               f"reports {plan.reports_uri}")


@remote_app.command("smoke")
def remote_smoke(
    project: Annotated[str, typer.Option(help="project to train and serve")] = "test-project",
    stage: Annotated[str, typer.Option(help="stage to deploy to")] = "staging",
) -> None:
    """Prove the deployed stack end to end: train, deploy, invoke, dashboards, retire, clean
    up (docs/aws.md says what it checks and costs). Refuses if anything of <project> serves."""
    from mlops_control.remote import smoke

    outputs, registry = _remote()
    run = smoke.AwsSmoke(
        clients=smoke.Clients(s3=_aws("s3"), sfn=_aws("stepfunctions"),
                              sagemaker=_aws("sagemaker"), runtime=_aws("sagemaker-runtime"),
                              cloudwatch=_aws("cloudwatch"),
                              autoscaling=_aws("application-autoscaling")),
        outputs=outputs, registry=registry, region=_region(),
        project=project, stage=stage, say=say)
    steps: list = []
    try:
        steps = run.run(smoke.project_data_csv(_settings().projects_dir / project))
    finally:
        for step in steps or run.steps:
            mark = "ok  " if step.ok else "FAIL"
            typer.echo(f"{mark} {step.name:<11} {step.seconds:7.0f}s  {step.detail}")
    if not all(step.ok for step in run.steps):
        raise typer.Exit(1)


@remote_app.command("rotate-webhook-secret")
def remote_rotate_webhook_secret(
    sync_only: Annotated[bool, typer.Option(
        "--sync-only", help="do not rotate: point MLflow's webhook at the stored secret")]
    = False,
) -> None:
    """A new webhook HMAC secret in Secrets Manager and MLflow's webhook, together (rerunnable)."""
    from mlops_control.remote import webhook_secret

    outputs, registry = _remote()
    result = webhook_secret.rotate(
        secretsmanager=_aws("secretsmanager"), registry=registry,
        secret_arn=outputs.webhook_secret, webhook_url=outputs.webhook_url,
        sync_only=sync_only)
    verb = "created" if result.created else "updated"
    what = "rotated" if result.rotated else "kept"
    typer.echo(f"webhook secret {what}; MLflow webhook {result.webhook_id} {verb}")


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
