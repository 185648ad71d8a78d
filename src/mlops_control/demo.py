"""``make demo``: the whole model life cycle on this machine, printed step by step.

Real parts throughout: an MLflow server (SQLite), real signed webhooks to the control centre's
receiver, training through the shared image's entrypoint, serving processes on 127.0.0.1. The
demo acts only as a person would (tagging versions, dropping a file in the inbox) and waits
until the registry shows the control centre's answer.

It runs in its own state folder (``state/demo``), wiped at the start, so every run tells the
same story from version 1.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import typer

from mlops_control import contract, local_server, local_training, logs, names, procs
from mlops_control.control_centre import ControlCentre
from mlops_control.monitoring.series import EndpointSeries
from mlops_control.monitoring.stats import PSI_MAJOR
from mlops_control.registry import RegistryClient
from mlops_control.registry_view import format_versions
from mlops_control.settings import Settings
from mlops_control.traffic import Traffic

PROJECT = "test-project"
WAIT_S = 180.0
TRAFFIC_PER_S = 20.0
DRIFTED = ("mean_radius", "mean_perimeter", "mean_area", "worst_radius")
DRIFT_FACTOR = 1.4


@dataclass
class Story:
    steps: list[str] = field(default_factory=list)
    latencies: dict[str, float] = field(default_factory=dict)


class Demo:
    def __init__(self, settings: Settings, keep: bool) -> None:
        self.settings = replace(settings, state_dir=settings.state_dir / "demo")
        self.keep = keep
        self.story = Story()
        self.step_no = 0
        self.total = 14
        self.traffic: Traffic | None = None

    # --- printing -------------------------------------------------------------------------
    def step(self, title: str) -> None:
        self.step_no += 1
        typer.secho(f"\n[{self.step_no}/{self.total}] {title}", fg=typer.colors.BRIGHT_BLUE,
                    bold=True)

    def note(self, text: str) -> None:
        typer.echo(f"    {text}")

    def done(self, text: str) -> None:
        self.story.steps.append(text)
        typer.secho(f"    ✓ {text}", fg=typer.colors.GREEN)

    def tags(self) -> None:
        table = format_versions(self.registry.model_versions(PROJECT))
        typer.echo("\n".join("    │ " + line for line in table.splitlines()))

    # --- waiting for the control centre -----------------------------------------------------
    def wait(self, what: str, condition: Callable[[], bool]) -> float:
        started = time.monotonic()
        while time.monotonic() - started < WAIT_S:
            if condition():
                return time.monotonic() - started
            time.sleep(0.1)
        raise typer.Exit(_fail(f"timed out waiting for: {what}; see {self.settings.logs_dir}"))

    def version_tags(self, version: str) -> dict[str, str]:
        return self.registry.get_model_version(PROJECT, version).tags

    def serving(self, stage: str, version: str) -> Callable[[], bool]:
        def check() -> bool:
            tags = self.version_tags(version)
            if tags.get(names.TAG_STATUS) == names.Status.FAILED:
                raise typer.Exit(_fail(f"deployment of version {version} failed: "
                                       f"{tags.get(names.TAG_MESSAGE)}"))
            return (tags.get(names.TAG_STATUS) == names.Status.IN_SERVICE
                    and tags.get(names.TAG_ENDPOINT) == names.endpoint_name(PROJECT, stage)
                    and self.answering(stage) == version)
        return check

    def answering(self, stage: str) -> str | None:
        """The version the stage's endpoint answers with, asked over HTTP."""
        url = self.centre.backend.url(PROJECT, stage)
        try:
            with urllib.request.urlopen(f"{url}/version", timeout=2) as response:
                return str(json.loads(response.read()).get("version"))
        except (OSError, ValueError):
            return None

    # --- the story ------------------------------------------------------------------------
    def run(self) -> None:
        self.prepare()
        try:
            self.tell()
        finally:
            if self.keep:
                typer.secho("\nKEEP=1: everything keeps running. Stop it with Ctrl-C here.",
                            fg=typer.colors.YELLOW)
                try:
                    while True:
                        time.sleep(1)
                except KeyboardInterrupt:
                    pass
            self.shutdown()

    def prepare(self) -> None:
        state = self.settings.state_dir
        # A previous demo run with KEEP=1 may still run: stop what it started, by pid file.
        local_server.LocalMLflow(self.settings).stop()
        for pid_file in (state / "run" / "endpoints").glob("*.pid") if state.exists() else []:
            procs.Managed(pid_file.stem, pid_file, Path("/dev/null")).stop()
        shutil.rmtree(state, ignore_errors=True)
        for port, what in ((self.settings.mlflow_port, "MLflow"),
                           (self.settings.receiver_port, "the webhook receiver"),
                           (self.settings.endpoint_base_port, "the production endpoint"),
                           (self.settings.endpoint_base_port + 1, "the staging endpoint")):
            if procs.port_in_use(port):
                raise typer.Exit(_fail(
                    f"port {port} (for {what}) is in use; stop `make up` or whatever holds it"))
        logs.setup()

    def tell(self) -> None:
        self.step("Start the MLflow server (SQLite backend, local artifacts)")
        self.server = local_server.LocalMLflow(self.settings)
        uri = self.server.start()
        self.registry = RegistryClient(uri)
        self.done(f"MLflow UI and REST API at {uri}")

        self.step(f"Validate {PROJECT} against the model contract")
        valid = contract.validate(self.settings.projects_dir / PROJECT)
        self.done(f"data.py get_data() returns (X, y); test slice of {valid.test_rows} rows")

        self.step("Start the control centre: webhook receiver, inbox watcher, reconciler")
        self.centre = ControlCentre(self.settings, uri, reconcile_interval_s=30)
        self.centre.start()
        self.done(f"MLflow sends signed webhooks to {self.centre.receiver.url}")

        self.step(f"Train {PROJECT} with the shared training entrypoint and register it")
        result = local_training.run(self.settings, uri,
                                    local_training.LocalTrainingJob(project=PROJECT), quiet=True)
        (v1,) = result["versions"]
        self.done(f"version {v1}: accuracy {result['metrics']['accuracy']:.3f}; "
                  f"promotion gate: {result.get('promotion')}")
        self.note("the gate tagged it deploy=staging; the control centre deploys it:")
        took = self.wait("version 1 serving staging", self.serving("staging", v1))
        self.done(f"version {v1} serves {PROJECT}-staging on "
                  f"{self.centre.backend.url(PROJECT, 'staging')} ({took:.1f}s after training)")
        self.tags()

        self.step(f"Promote version {v1} to production: tag deploy=production (as in the UI)")
        started = time.monotonic()
        self.registry.set_tag(PROJECT, v1, names.TAG_DEPLOY, "production")
        self.wait("version 1 serving production", self.serving("production", v1))
        self.story.latencies["deploy tag → answering"] = time.monotonic() - started
        self.done(f"version {v1} serves {PROJECT}-production on "
                  f"{self.centre.backend.url(PROJECT, 'production')} "
                  f"({self.story.latencies['deploy tag → answering']:.1f}s from tag to answer)")
        self.tags()

        self.step("Send a test request to the production endpoint")
        answer = self.request(valid.X_test.head(3))
        self.done(f"POST /invocations with 3 rows → {answer}")

        self.step("Send steady traffic to production: it feeds the local dashboards")
        started = time.time()
        self.traffic = self.start_traffic()
        self.done(f"{self.traffic.per_second:.0f} requests/s of {self.traffic.rows} rows drawn "
                  f"from the training data, every {self.traffic.bad_every}th malformed (a 4xx "
                  "on purpose), in the background through the steps below")
        self.wait("the traffic in the metrics store",
                  lambda: sum(i.requests for i in self.recorded(started).intervals) > 0)
        shown = self.recorded(started)
        self.done(f"the dashboards show it: {sum(i.requests for i in shown.intervals)} requests "
                  f"so far, p50 latency {shown.latency_ms(0.5)[0] or 0:.1f} ms, at "
                  f"{self.centre.dashboard_url(PROJECT)}")

        self.step("Batch inference: score a CSV file, predictions added as a column")
        self.batch(valid)

        self.step("New data lands in the inbox: the control centre retrains")
        v2 = self.drop_new_data()
        # The version exists as soon as train.py registers it; the job tags its lineage after.
        self.wait("version 2 lineage", lambda: names.TAG_LINEAGE_TRIGGER in self.version_tags(v2))
        tags = self.version_tags(v2)
        self.done(f"version {v2} trained on {tags.get(names.TAG_LINEAGE_DATA_LOCATION)} "
                  f"(trigger {tags.get(names.TAG_LINEAGE_TRIGGER)}, data version "
                  f"{tags.get(names.TAG_LINEAGE_DATA_VERSION, '')[:19]}…)")
        self.wait("version 2 serving staging", self.serving("staging", v2))
        self.done(f"promotion gate passed; version {v2} serves staging")
        self.tags()

        self.step(f"Promote version {v2} to production by tag")
        self.registry.set_tag(PROJECT, v2, names.TAG_DEPLOY, "production")
        self.wait("version 2 serving production", self.serving("production", v2))
        self.wait("version 1 superseded", lambda: self.version_tags(v1).get(
            names.TAG_STATUS) == names.Status.SUPERSEDED)
        self.done(f"version {v2} serves production; version {v1} is superseded")
        self.tags()
        if self.traffic is not None:
            shifted = time.time()
            self.traffic.shift = dict.fromkeys(DRIFTED, DRIFT_FACTOR)
            self.note(f"from now on the traffic's {', '.join(DRIFTED)} are "
                      f"{DRIFT_FACTOR:.0%} of what training saw")

            def drift() -> float:
                return self.recorded(shifted).window_drift(DRIFTED[0]) or 0.0

            self.wait(f"drift of {DRIFTED[0]} in the metrics store", lambda: drift() > PSI_MAJOR)
            self.done(f"{names.stats_dashboard(PROJECT)} shows it: {DRIFTED[0]} has drifted, "
                      f"PSI {drift():.2f} against the training data (above {PSI_MAJOR}: shifted)")

        self.step(f"Roll back to version {v1} by tag (deploy=production on the older version)")
        self.registry.set_tag(PROJECT, v1, names.TAG_DEPLOY, "production")
        self.wait("version 1 serving production", self.serving("production", v1))
        self.wait("version 2 rolled back", lambda: self.version_tags(v2).get(
            names.TAG_STATUS) == names.Status.ROLLED_BACK)
        self.done(f"version {v1} serves production again; version {v2} is rolled_back")
        self.tags()

        self.step(f"Deprecate the live version {v1}: the endpoint rolls back to the last good one")
        self.registry.set_tag(PROJECT, v1, names.TAG_DEPRECATED, "true")
        self.wait("version 2 serving production", self.serving("production", v2))
        self.wait("version 1 retired", lambda: self.version_tags(v1).get(
            names.TAG_STATUS) == names.Status.RETIRED)
        self.done(f"version {v1} retired; production rolled back to version {v2}")
        self.tags()

        self.step(f"Deprecate version {v2} too: nothing good is left, so the endpoint is retired")
        self.stop_traffic()
        self.registry.set_tag(PROJECT, v2, names.TAG_DEPRECATED, "true")
        self.wait("production endpoint removed", lambda: self.answering("production") is None
                  and self.version_tags(v2).get(names.TAG_STATUS) == names.Status.RETIRED)
        self.done("production endpoint removed; both versions retired")
        self.tags()

        self.step("Summary")
        for line in self.story.steps:
            typer.echo(f"    • {line}")
        typer.echo(f"\n    MLflow UI: {uri}/#/models/{PROJECT}")
        typer.echo(f"    control centre status: http://127.0.0.1:{self.centre.receiver.port}/status")
        typer.echo(f"    logs: {self.settings.logs_dir}")
        self.summarize_dashboards()

    # --- traffic and dashboards -------------------------------------------------------------
    def start_traffic(self) -> Traffic:
        frame = self.project_data().drop(columns=["target"])
        traffic = Traffic(self.centre.backend.url(PROJECT, "production"), frame,
                          per_second=TRAFFIC_PER_S, rows=4, seed=7)
        traffic.bad_every = 50
        return traffic.start()

    def recorded(self, since: float) -> EndpointSeries:
        """What the production endpoint recorded since ``since`` (what the dashboards read)."""
        from mlops_control.monitoring import series, store

        metrics = store.MetricsStore(store.path_in(self.settings.state_dir))
        try:
            return series.recorded(metrics, PROJECT, names.endpoint_name(PROJECT, "production"),
                                   since, time.time())
        finally:
            metrics.close()

    def stop_traffic(self) -> None:
        if self.traffic is None:
            return
        self.traffic.stop()
        traffic, self.traffic = self.traffic, None
        self.done(f"traffic stopped: {traffic.sent} requests through three version switches, "
                  f"{traffic.failed} failed (no answer or 5xx), "
                  f"{sum(c for s, c in traffic.statuses.items() if s == 400)} refused on "
                  "purpose (400)")

    def summarize_dashboards(self) -> None:
        from mlops_control.dashboards import html
        from mlops_control.monitoring import store

        files = html.write(store.path_in(self.settings.state_dir),
                           self.settings.state_dir / "dashboards", PROJECT,
                           known=self.centre.endpoint_infos())
        typer.echo(f"    dashboards: {self.centre.dashboard_url(PROJECT)} "
                   f"(live while the control centre runs: make demo KEEP=1)")
        typer.echo(f"    dashboards as files: {files[0]}")
        typer.echo(f"                         {files[1]}")

    def project_data(self) -> Any:
        spec = importlib.util.spec_from_file_location(
            "demo_tp_data", self.settings.projects_dir / PROJECT / "data.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.bundled()

    def request(self, X: Any) -> str:
        body = json.dumps({"dataframe_split": {"columns": list(X.columns),
                                               "data": X.values.tolist()}}).encode()
        url = self.centre.backend.url(PROJECT, "production") + "/invocations"
        request = urllib.request.Request(url, data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read().decode().strip()

    def batch(self, valid: contract.ValidProject) -> None:
        from mlops_control import batch as batch_mod
        from mlops_control import local_models

        folder = self.settings.state_dir / "batch"
        folder.mkdir(parents=True, exist_ok=True)
        source = folder / "input.csv"
        valid.X_test.to_csv(source, index=False)
        target = folder / "output.csv"
        model_dir = local_models.download(self.registry, self.settings.models_dir, PROJECT, "1")
        report = batch_mod.score_csv(model_dir, source, target)
        header, first = target.read_text().splitlines()[:2]
        self.done(f"scored {report.rows} rows of {source} in {report.seconds:.2f}s → {target}")
        self.note(f"last columns: …{header[-40:]}")
        self.note(f"first row:    …{first[-40:]}")

    def drop_new_data(self) -> str:
        import numpy as np

        frame = self.project_data()
        rng = np.random.default_rng(7)
        # "Newer" data: a resample of the bundled set with a little measurement noise.
        fresh = frame.sample(n=len(frame), replace=True, random_state=7).reset_index(drop=True)
        features = [c for c in fresh.columns if c != "target"]
        fresh[features] = fresh[features] * rng.normal(1.0, 0.01, size=fresh[features].shape)
        inbox = self.settings.inbox_dir / PROJECT
        inbox.mkdir(parents=True, exist_ok=True)
        partial = inbox / ".new-data.csv.part"
        fresh.to_csv(partial, index=False)
        partial.rename(inbox / "new-data.csv")
        self.note(f"dropped {len(fresh)} rows into {inbox}/new-data.csv")

        def trained() -> bool:
            return len(self.registry.model_versions(PROJECT)) >= 2

        self.wait("version 2 trained", trained)
        return self.registry.model_versions(PROJECT)[-1].version

    def shutdown(self) -> None:
        if self.traffic is not None:
            self.traffic.stop()
        centre = getattr(self, "centre", None)
        if centre is not None:
            centre.stop()
        server = getattr(self, "server", None)
        if server is not None:
            server.stop()
        typer.secho("\nstopped everything the demo started.", fg=typer.colors.CYAN)


def _fail(message: str) -> int:
    typer.secho(f"demo failed: {message}", fg=typer.colors.RED, err=True)
    return 1
