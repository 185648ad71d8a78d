"""``make aws-smoke`` / ``mlops remote smoke``: the real thing, end to end, in your account.

After ``cdk deploy`` it proves the whole chain the offline tests can only simulate:

1. **preflight**: nothing of ``<project>`` serves (no ``<project>-*`` endpoint, no version
   tagged ``deploy``), so the smoke can never replace a live model;
2. **train**: uploads the project's data to ``s3://<data bucket>/<prefix>/<project>/`` →
   EventBridge → the data trigger → the Train state machine → a SageMaker training job on the
   shared image → a registered version with lineage tags (the promotion gate may tag it);
3. **deploy**: tags the version ``deploy=<stage>`` unless the gate did → webhook → the Deploy
   state machine → endpoint ``<project>-<stage>`` → ``deployment.status=in_service``;
4. **invoke**: sends the version's own test slice to the endpoint, one prediction per row;
5. **dashboards**: ``<project>_metrics`` and ``<project>_stats`` exist in CloudWatch;
6. **retire**: removes the ``deploy`` tag → webhook → the Retire state machine → the endpoint,
   its configs, models, alarms, scaling and dashboards are gone, the version says ``retired``;
7. **clean up** (always, even after a failure): whatever of the above is still there is
   deleted directly (endpoint and friends, the uploaded data, the training output, the
   registered version), so a failed smoke leaves nothing billed.

Each step is a small method over clients passed in; ``tests/remote`` runs them on moto, Stubber
and an MLflow fake. The whole cannot run here: it needs an account.
"""

from __future__ import annotations

import io
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlops_control import names
from mlops_control.backends import sagemaker as sm
from mlops_control.errors import ControlCentreError, NotFound
from mlops_control.registry import ModelVersion, RegistryClient
from mlops_control.remote import deployment
from mlops_control.remote.outputs import StackOutputs


@dataclass
class Clients:
    s3: Any
    sfn: Any
    sagemaker: Any
    runtime: Any
    cloudwatch: Any
    autoscaling: Any


@dataclass
class Step:
    name: str
    ok: bool
    detail: str
    seconds: float


@dataclass
class AwsSmoke:
    clients: Clients
    outputs: StackOutputs
    registry: RegistryClient
    region: str
    project: str = "test-project"
    stage: str = "staging"
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    poll_s: float = 15.0
    timeout_s: float = 3600.0
    say: Callable[[str], None] = lambda _: None
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic
    steps: list[Step] = field(default_factory=list)
    # What this run made, so that clean-up removes exactly that.
    data_key: str | None = None
    training_job: str | None = None
    version: str | None = None
    endpoint_made: bool = False
    preflight_passed: bool = False

    @property
    def endpoint(self) -> str:
        return names.endpoint_name(self.project, self.stage)

    # --- the run --------------------------------------------------------------------------
    def run(self, data_csv: bytes) -> list[Step]:
        try:
            self._step("preflight", self.preflight)
            self._step("train", lambda: self.train(data_csv))
            self._step("deploy", self.deploy)
            self._step("invoke", self.invoke)
            self._step("dashboards", self.dashboards)
            self._step("retire", self.retire)
        finally:
            self._step("clean up", self.clean_up, reraise=False)
        return self.steps

    def _step(self, name: str, action: Callable[[], str], reraise: bool = True) -> None:
        started = self.clock()
        self.say(f"[{name}] ...")
        try:
            detail = action()
        except Exception as exc:
            self.steps.append(Step(name, False, f"{type(exc).__name__}: {exc}",
                                   self.clock() - started))
            self.say(f"[{name}] FAILED: {exc}")
            if reraise:
                raise
            return
        self.steps.append(Step(name, True, detail, self.clock() - started))
        self.say(f"[{name}] ok: {detail}")

    def _until(self, what: str, probe: Callable[[], Any]) -> Any:
        deadline = self.clock() + self.timeout_s
        while True:
            found = probe()
            if found:
                return found
            if self.clock() > deadline:
                raise ControlCentreError(f"gave up waiting for {what} after "
                                         f"{self.timeout_s:.0f}s")
            self.sleep(self.poll_s)

    # --- the steps ------------------------------------------------------------------------
    def preflight(self) -> str:
        live = self.clients.sagemaker.list_endpoints(NameContains=f"{self.project}-",
                                                     MaxResults=100)["Endpoints"]
        ours = [e["EndpointName"] for e in live
                if e["EndpointName"].startswith(f"{self.project}-")]
        if ours:
            raise ControlCentreError(f"{', '.join(ours)} already exist: the smoke only runs on "
                                     f"a project nothing serves, so it never replaces a model")
        try:
            tagged = [v.version for v in self.registry.model_versions(self.project)
                      if names.TAG_DEPLOY in v.tags]
        except NotFound:
            tagged = []
        if tagged:
            raise ControlCentreError(f"{self.project} versions {', '.join(tagged)} are tagged "
                                     "deploy: the smoke would race them; remove the tags first")
        self.preflight_passed = True
        return f"nothing of {self.project} serves; run {self.run_id}"

    def train(self, data_csv: bytes) -> str:
        bucket = self.outputs.data_bucket
        self.data_key = f"{self.outputs.data_prefix.strip('/')}/{self.project}/" \
                        f"aws-smoke-{self.run_id}.csv"
        self.clients.s3.put_object(Bucket=bucket, Key=self.data_key, Body=data_csv)
        location = f"s3://{bucket}/{self.data_key}"
        execution = self._until("the training execution the upload starts",
                                lambda: self.training_execution(location))
        self.training_job = execution["input"]["training_job_name"]
        described = self._until("the training execution to end", lambda: self._ended(
            execution["executionArn"]))
        if described["status"] != "SUCCEEDED":
            raise ControlCentreError(f"training execution {described['status']}: "
                                     f"{described.get('cause') or described.get('error')}")
        version = self._until("the registered version", self.trained_version)
        self.version = version.version
        return (f"{self.project} version {self.version} from training job "
                f"{self.training_job} ({version.tags.get(names.TAG_PROMOTION, 'no gate')})")

    def training_execution(self, location: str) -> dict[str, Any] | None:
        """The Train execution whose input names the object we uploaded."""
        pages = self.clients.sfn.get_paginator("list_executions").paginate(
            stateMachineArn=self.outputs.train_state_machine)
        for page in pages:
            for summary in page["executions"]:
                described = self.clients.sfn.describe_execution(
                    executionArn=summary["executionArn"])
                body = json.loads(described.get("input") or "{}")
                if body.get("data_object") == location:
                    return {**described, "input": body}
        return None

    def _ended(self, execution_arn: str) -> dict[str, Any] | None:
        described = self.clients.sfn.describe_execution(executionArn=execution_arn)
        return None if described["status"] == "RUNNING" else dict(described)

    def trained_version(self) -> ModelVersion | None:
        try:
            versions = self.registry.model_versions(self.project)
        except NotFound:
            return None
        for version in versions:
            if version.tags.get(names.TAG_LINEAGE_TRAINING_JOB) == self.training_job:
                return version
        return None

    def deploy(self) -> str:
        version = self._require_version()
        asked = deployment.request(self.registry, self.project, version, self.stage)
        self.endpoint_made = True
        if asked is None:
            return f"{self.endpoint} already serves version {version}"
        outcome = deployment.wait(self.registry, self.project, version, self.stage, asked,
                                  timeout_s=self.timeout_s, poll_s=self.poll_s,
                                  sleep=self.sleep, clock=self.clock, progress=self.say)
        if outcome.status != names.Status.IN_SERVICE:
            raise ControlCentreError(f"deployment {outcome.status}: {outcome.message}")
        return f"{self.endpoint} serves version {version}: {outcome.message}"

    def invoke(self) -> str:
        version = self.registry.get_model_version(self.project, self._require_version())
        if not version.run_id:
            raise ControlCentreError(f"version {version.version} has no run to read its "
                                     "test slice from")
        payload = json.loads(self.registry.run_artifact(version.run_id,
                                                        names.SMOKE_TEST_ARTIFACT))
        answer = self.clients.runtime.invoke_endpoint(**sm.smoke_request(self.endpoint,
                                                                         payload))
        count = sm.check_smoke_response(answer["Body"].read(), sm.expected_rows(payload))
        return f"{count} predictions for the {count}-row test slice"

    def dashboards(self) -> str:
        wanted = [names.metrics_dashboard(self.project), names.stats_dashboard(self.project)]
        for name in wanted:
            body = json.loads(self.clients.cloudwatch.get_dashboard(
                DashboardName=name)["DashboardBody"])
            if not body.get("widgets"):
                raise ControlCentreError(f"dashboard {name} has no widgets")
        return ", ".join(wanted)

    def retire(self) -> str:
        version = self._require_version()
        self.registry.delete_tag(self.project, version, names.TAG_DEPLOY)
        self._until(f"{self.endpoint} to be deleted", lambda: not self._endpoint_exists())
        self._until(f"version {version} to say retired", lambda: self.registry.get_model_version(
            self.project, version).tags.get(names.TAG_STATUS) == names.Status.RETIRED)
        return f"{self.endpoint} deleted, version {version} retired"

    def clean_up(self) -> str:
        done: list[str] = []
        if self.version:
            self.registry.delete_tag(self.project, self.version, names.TAG_DEPLOY)
        stages = set()
        if self.endpoint_made:
            stages.add(self.stage)
        if self.preflight_passed and self.version:
            # Nothing of the project served before the run: any endpoint serving our version
            # now is ours (the promotion gate may have chosen another stage than --stage).
            stages |= {s for s, v in self.backend().live(self.project).items()
                       if v == self.version}
        for stage in sorted(stages):
            endpoint = names.endpoint_name(self.project, stage)
            if self._endpoint_exists(endpoint) or self._configs_left(endpoint):
                self.backend().retire(self.project, stage)
                done.append(f"{endpoint} and its resources")
        if self.data_key:
            self.clients.s3.delete_object(Bucket=self.outputs.data_bucket, Key=self.data_key)
            done.append(f"s3://{self.outputs.data_bucket}/{self.data_key}")
        if self.training_job:
            prefix = f"training-output/{self.training_job}/"
            bucket = self.outputs.artifact_bucket
            for page in self.clients.s3.get_paginator("list_objects_v2").paginate(
                    Bucket=bucket, Prefix=prefix):
                keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
                if keys:
                    self.clients.s3.delete_objects(Bucket=bucket, Delete={"Objects": keys})
            done.append(f"s3://{bucket}/{prefix}")
        if self.version:
            self.registry.request("DELETE", "/api/2.0/mlflow/model-versions/delete",
                                  body={"name": self.project, "version": self.version})
            done.append(f"{self.project} version {self.version}")
        return "removed " + ("; ".join(done) if done else "nothing (nothing was made)")

    # --- helpers --------------------------------------------------------------------------
    def _require_version(self) -> str:
        if not self.version:
            raise ControlCentreError("no version was trained")
        return self.version

    def _endpoint_exists(self, endpoint: str | None = None) -> bool:
        return self.backend().current_config(endpoint or self.endpoint) is not None

    def _configs_left(self, endpoint: str) -> bool:
        found = self.clients.sagemaker.list_endpoint_configs(
            NameContains=f"{endpoint}-v", MaxResults=10)["EndpointConfigs"]
        return bool(found)

    def backend(self) -> sm.SageMakerBackend:
        config = sm.SageMakerConfig(image_uri=self.outputs.image_uri,
                                    role_arn=self.outputs.sagemaker_role, capture_uri="",
                                    region=self.region)
        return sm.SageMakerBackend(sagemaker=self.clients.sagemaker, runtime=self.clients.runtime,
                                   cloudwatch=self.clients.cloudwatch,
                                   autoscaling=self.clients.autoscaling, config=config)


def project_data_csv(project_dir: Path) -> bytes:
    """The project's full data set (its ``get_data()`` without ``TEST_ENV``) as one CSV with a
    ``target`` column: what the smoke uploads for the training job to read."""
    import os
    import runpy

    saved = os.environ.pop(names.ENV_TEST_ENV, None)
    try:
        X, y = runpy.run_path(str(project_dir / "data.py"))["get_data"]()
    finally:
        if saved is not None:
            os.environ[names.ENV_TEST_ENV] = saved
    frame = X.copy()
    frame["target"] = list(y)
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False)
    return buffer.getvalue().encode()
