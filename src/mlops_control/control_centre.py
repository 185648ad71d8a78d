"""The local control centre: ``mlops up`` (``make up``).

It runs, in one foreground process: the webhook receiver, the inbox watcher, the reconciler
(at start-up, on every event, and on a period) and a watchdog over the endpoint processes. The
MLflow server and the endpoints are child processes it starts and stops.

Events only say which project to look at again; the reconciler reads the registry and makes
the endpoints match it. Work for one project is never done twice at once.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mlops_control import events, local_training, names, webhooks
from mlops_control.backends.local import LocalBackend
from mlops_control.dashboards import html as dashboards
from mlops_control.dedupe import SeenDeliveries
from mlops_control.errors import ControlCentreError, RegistryError
from mlops_control.inbox import InboxWatcher
from mlops_control.monitoring import store as metrics_store
from mlops_control.receiver import Receiver
from mlops_control.registry import RegistryClient
from mlops_control.settings import Settings
from mlops_control.steps import reconcile

logger = logging.getLogger("mlops_control.centre")

DEFAULT_STAGES = ("staging", "production")


def stages_from_env() -> frozenset[str]:
    raw = os.environ.get("MLOPS_STAGES", ",".join(DEFAULT_STAGES))
    stages = frozenset(s.strip() for s in raw.split(",") if s.strip())
    bad = [s for s in stages if not names.STAGE_PATTERN.match(s)]
    if bad or not stages:
        raise ControlCentreError(f"MLOPS_STAGES={raw!r}: stages are lowercase words like "
                                 "staging,production")
    return stages


@dataclass
class History:
    """What the control centre did, newest last (for ``/status`` and the demo)."""

    items: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **item: Any) -> None:
        with self.lock:
            self.items.append({"at": time.strftime("%H:%M:%S"), **item})
            del self.items[:-200]


class ControlCentre:
    def __init__(self, settings: Settings, tracking_uri: str, *,
                 stages: frozenset[str] | None = None, reconcile_interval_s: float = 30.0,
                 watchdog_interval_s: float = 2.0, serving_workers: int | None = None,
                 receiver_port: int | None = None) -> None:
        self.settings = settings
        self.tracking_uri = tracking_uri
        self.stages = stages or stages_from_env()
        self.registry = RegistryClient.from_env(tracking_uri)
        self.backend = LocalBackend(settings, self.registry, workers=serving_workers)
        # Every configured stage has its port before anything serves, whichever deploys first:
        # the banner's ports are the ports they serve on.
        self.backend.ports.book_stages(self.stages,
                                       serving={r.stage for r in self.backend.records()})
        self.seen = SeenDeliveries(settings.run_dir / "deliveries.sqlite")
        self.receiver = Receiver(
            "127.0.0.1", settings.receiver_port if receiver_port is None else receiver_port,
            webhooks.local_secret(settings.secrets_dir), self.seen,
            on_event=self.on_registry_event, status=self.status,
            pages={dashboards.PREFIX: dashboards.DashboardPages(
                metrics_store.path_in(settings.state_dir), self.endpoint_infos)})
        self.inbox = InboxWatcher(settings.inbox_dir, settings.state_dir / "data",
                                  self.on_data)
        self.history = History()
        self.reconcile_interval_s = reconcile_interval_s
        self.watchdog_interval_s = watchdog_interval_s
        self._pending: list[str] = []
        self._ignored: set[str] = set()
        self._wake = threading.Condition()
        self._stop = threading.Event()
        self._idle = threading.Event()
        self._trainer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="train")
        self._threads: list[threading.Thread] = []
        self.training_jobs = 0
        self.reconciles = 0
        """Reconcile passes run (one per project per request): tests assert that invalid
        input moves neither this nor ``training_jobs``."""

    # --- life cycle -----------------------------------------------------------------------
    def start(self) -> None:
        # Before anything is deployed: a previous run killed mid-deployment may have left a
        # candidate or an unrecorded endpoint process behind.
        self.backend.recover()
        self.receiver.start()
        registration = webhooks.ensure(self.registry, self.receiver.url,
                                       webhooks.local_secret(self.settings.secrets_dir))
        logger.info("webhook registered" if registration.created else "webhook updated",
                    extra={"url": registration.url, "id": registration.webhook_id})
        self.inbox.start()
        logger.info("dashboards", extra={"url": self.dashboard_url()})
        for name, target in (("reconciler", self._reconcile_loop), ("timer", self._timer_loop),
                             ("watchdog", self._watchdog_loop)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        self.request_all("start-up")

    def stop(self, stop_endpoints: bool = True) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        self.inbox.stop()
        self.receiver.stop()
        self._trainer.shutdown(wait=True, cancel_futures=True)
        for thread in self._threads:
            thread.join(timeout=30)
        if stop_endpoints:
            self.backend.stop_all()
        self.seen.close()

    # --- events ---------------------------------------------------------------------------
    def on_registry_event(self, event: events.RegistryEvent) -> None:
        self.request(event.model, f"{event.event} {event.key or ''}={event.value or ''}")

    def on_data(self, event: events.DataEvent) -> None:
        if not (self.settings.projects_dir / event.project).is_dir():
            logger.error("data for an unknown project", extra={
                "project": event.project, "file": event.location,
                "fix": f"add projects/{event.project} or move the file"})
            return
        self._trainer.submit(self._train, event)

    def request(self, project: str, why: str) -> None:
        if not names.PROJECT_NAME_PATTERN.match(project):
            # Registered model names are freer than project names (spaces, ';', 300
            # characters...), and a project name becomes file, socket and endpoint names.
            # The Lambdas skip such models too.
            if project not in self._ignored:
                self._ignored.add(project)
                logger.warning("not a control centre project name; model ignored",
                               extra={"model": project, "why": why})
            return
        with self._wake:
            if project not in self._pending:
                self._pending.append(project)
            self._idle.clear()
            self._wake.notify_all()
        logger.debug("reconcile requested", extra={"project": project, "why": why})

    def request_all(self, why: str) -> None:
        try:
            projects = set(self.registry.registered_model_names())
        except RegistryError as exc:
            logger.warning("cannot list models; will retry", extra={"error": str(exc)})
            return
        projects |= {r.project for r in self.backend.records()}
        for project in sorted(projects):
            self.request(project, why)

    def wait_idle(self, timeout: float) -> bool:
        """Block until no reconcile is pending or running (tests and the demo use this)."""
        return self._idle.wait(timeout)

    # --- workers --------------------------------------------------------------------------
    def _reconcile_loop(self) -> None:
        while not self._stop.is_set():
            with self._wake:
                while not self._pending and not self._stop.is_set():
                    self._idle.set()
                    self._wake.wait()
                if self._stop.is_set():
                    return
                project = self._pending.pop(0)
            self._reconcile(project)

    def _reconcile(self, project: str) -> None:
        self.reconciles += 1
        try:
            # This process is the only one deploying locally, and it does one project at a
            # time: a 'deploying' tag left by a process that died is retried at once.
            outcomes = reconcile.reconcile_project(self.registry, self.backend, project,
                                                   self.stages, busy=frozenset())
        except RegistryError as exc:
            logger.warning("MLflow unavailable; the reconciler will try again",
                           extra={"project": project, "error": str(exc)})
            time.sleep(min(5.0, self.reconcile_interval_s))
            self.request(project, "retry after MLflow error")
            return
        except Exception:
            logger.exception("reconcile failed", extra={"project": project})
            return
        for outcome in outcomes:
            self.history.add(project=project, action=outcome.action, stage=outcome.stage,
                             version=outcome.version, ok=outcome.ok, message=outcome.message)
            log = logger.info if outcome.ok else logger.warning
            endpoint = names.endpoint_name(project, outcome.stage)
            extra: dict[str, Any] = {"action": outcome.action, "endpoint": endpoint,
                                     "version": outcome.version, "detail": outcome.message}
            if outcome.ok and outcome.action == "deploy":
                extra["url"] = self.backend.url(project, outcome.stage) + "/invocations"
                extra["dashboard"] = self.dashboard_url(project)
            log("done" if outcome.ok else "failed", extra=extra)

    def _timer_loop(self) -> None:
        while not self._stop.wait(self.reconcile_interval_s):
            self.request_all("periodic")

    def _watchdog_loop(self) -> None:
        while not self._stop.wait(self.watchdog_interval_s):
            for record in self.backend.records():
                if not self.backend.running(record.endpoint) and not self._stop.is_set():
                    logger.warning("endpoint process gone; restoring it",
                                   extra={"endpoint": record.endpoint})
                    self.request(record.project, "endpoint process died")

    def _train(self, event: events.DataEvent) -> None:
        self.training_jobs += 1
        logger.info("training on new data", extra={"project": event.project,
                                                   "data": event.location})
        job = local_training.LocalTrainingJob(
            project=event.project, register=True, data_location=event.location,
            data_version=event.version, trigger=names.Trigger.NEW_DATA)
        try:
            result = local_training.run(self.settings, self.tracking_uri, job, quiet=True)
        except ControlCentreError as exc:
            self.history.add(project=event.project, action="train", ok=False, message=str(exc))
            logger.error("training failed", extra={"project": event.project,
                                                   "reason": str(exc)})
            return
        warnings: list[str] = result.get("warnings") or []
        message = "; ".join([result.get("promotion") or "registered", *warnings])
        self.history.add(project=event.project, action="train", ok=True,
                         version=",".join(result["versions"]), message=message)
        logger.info("trained", extra={"project": event.project,
                                      "version": ",".join(result["versions"]),
                                      "promotion": result.get("promotion") or "no gate"})
        for warning in warnings:
            # The job ran quietly (its lines are in train.log): what it warned about, such as
            # a project that never read the new data, must still reach the person watching.
            logger.warning("trained with a warning", extra={
                "project": event.project, "version": ",".join(result["versions"]),
                "warning": warning})
        self.request(event.project, "new version trained")

    # --- status ---------------------------------------------------------------------------
    def dashboard_url(self, project: str | None = None) -> str:
        """The local dashboards' address: the index, or both dashboards of ``project``."""
        base = f"http://127.0.0.1:{self.receiver.port}{dashboards.PREFIX}/"
        return base + project if project else base

    def endpoint_infos(self) -> list[dashboards.EndpointInfo]:
        return [dashboards.EndpointInfo(r.endpoint, r.project, r.version,
                                        self.backend.running(r.endpoint),
                                        f"http://127.0.0.1:{r.port}")
                for r in self.backend.records()]

    def status(self) -> dict[str, Any]:
        endpoints = []
        for record in self.backend.records():
            endpoints.append({"endpoint": record.endpoint, "version": record.version,
                              "url": f"http://127.0.0.1:{record.port}",
                              "running": self.backend.running(record.endpoint)})
        with self.history.lock:
            recent = list(self.history.items[-20:])
        return {"mlflow": self.tracking_uri, "stages": sorted(self.stages),
                "endpoints": endpoints, "webhooks": dict(self.receiver.counts),
                "training_jobs": self.training_jobs, "reconciles": self.reconciles,
                "recent": recent}
