"""SageMaker in moto as the control centre needs it: what moto 5.2.5 lacks, added honestly,
shared by the state machine executions (``tests/infrastructure``) and the SageMaker backend's
tests (``tests/unit``).

Added, each because moto lacks or differs:
- ``UpdateEndpoint`` (a backend method and a response handler): the endpoint goes ``Updating``,
  keeps serving its current config meanwhile, and settles on the new config (or, when the test
  says an alarm fired, back on the old one);
- endpoints and training jobs pass through ``Creating``/``Updating``/``InProgress`` for
  :attr:`World.polls` describes before they settle, so that every wait loop runs;
- injected faults: an endpoint that fails to start, a blue/green update rolled back by an
  alarm, an update SageMaker refuses, a failed training job, a scalable target Application
  Auto Scaling refuses;
- the model behind an endpoint: no container runs, so what an endpoint answers is scripted per
  model version (by default one prediction per row sent); every InvokeEndpoint is recorded
  with what *every* endpoint served at that moment (:class:`Invoked`), so a test can say which
  version the live endpoint served while a candidate was being smoke-tested;
- moto's InvokeEndpoint reads the endpoint name from the query string; it is in the path;
- CreateEndpoint refuses a name that exists, compared case-insensitively as SageMaker does
  (moto would replace the endpoint).

Not modelled: deletion is immediate (SageMaker shows ``Deleting`` for a while), and an endpoint
has no fleets, so "serves" means "is InService or Updating on a config whose model is that
version".
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

ACCOUNT = "123456789012"
REGION = "eu-west-1"


def default_answer(request: dict[str, Any]) -> str:
    """A healthy model: one prediction per row sent."""
    rows = request.get("dataframe_split", {}).get("data") or request.get("instances") or []
    return json.dumps({"predictions": [0] * len(rows)})


@dataclass(frozen=True)
class Serving:
    """One endpoint at one moment."""

    status: str
    config: str
    version: str | None


@dataclass(frozen=True)
class Invoked:
    """One InvokeEndpoint: which endpoint, the version that answered, and what every endpoint
    served at that moment."""

    endpoint: str
    version: str | None
    endpoints: dict[str, Serving]


@dataclass
class World:
    """The SageMaker behaviour a test scripts, and what it observed."""

    polls: int = 1
    """Describes that still show Creating/Updating/InProgress before a change settles."""
    endpoint_fails: str | None = None
    """FailureReason of a new endpoint that does not start."""
    update_rolls_back: bool = False
    """An alarm fires during a blue/green update: the endpoint stays on its old config."""
    refused_configs: set[str] = field(default_factory=set)
    """UpdateEndpoint to one of these configs is refused (a revert that cannot happen)."""
    training_fails: str | None = None
    scaling_fails: str | None = None
    """Application Auto Scaling refuses RegisterScalableTarget with this message."""
    answers: dict[str, Callable[[dict[str, Any]], str]] = field(default_factory=dict)
    """What the model of each version answers (default: one prediction per row)."""
    invocations: list[Invoked] = field(default_factory=list)
    updates: list[tuple[str, str]] = field(default_factory=list)
    """Every UpdateEndpoint SageMaker accepted: (endpoint, config)."""
    _pending: dict[str, dict[str, Any]] = field(default_factory=dict)

    def endpoints(self) -> dict[str, Serving]:
        """Every endpoint now, as SageMaker holds it (without settling anything)."""
        sagemaker = _sagemaker()
        return {name: Serving(e.endpoint_status, e.endpoint_config_name,
                              _version(sagemaker, e.endpoint_config_name))
                for name, e in sagemaker.endpoints.items()}


def _sagemaker() -> Any:
    from moto.sagemaker import models as sm_models

    return sm_models.sagemaker_backends[ACCOUNT][REGION]


def _version(sagemaker: Any, config_name: str) -> str | None:
    config = sagemaker.endpoint_configs.get(config_name)
    if config is None:
        return None
    model = sagemaker._models.get(config.production_variants[0]["ModelName"])
    if model is None:
        return None
    return model.primary_container.get("Environment", {}).get("MLOPS_MODEL_VERSION")


def install(monkeypatch: pytest.MonkeyPatch, world: World) -> None:
    """Patch moto's SageMaker, SageMaker runtime and Application Auto Scaling as the module
    docstring says."""
    from moto.applicationautoscaling.models import ApplicationAutoscalingBackend
    from moto.core.responses import ActionResult
    from moto.sagemaker import models as sm_models
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.responses import SageMakerResponse
    from moto.sagemakerruntime.models import SageMakerRuntimeBackend
    from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

    backend_cls = sm_models.SageMakerModelBackend
    create_endpoint = backend_cls.create_endpoint
    describe_endpoint = backend_cls.describe_endpoint
    create_training_job = backend_cls.create_training_job
    describe_training_job = backend_cls.describe_training_job
    register_scalable_target = ApplicationAutoscalingBackend.register_scalable_target

    def settle(key: str) -> dict[str, Any] | None:
        pending = world._pending.get(key)
        if pending is None:
            return None
        pending["polls"] -= 1
        if pending["polls"] >= 0:
            return None
        return world._pending.pop(key)

    def patched_create_endpoint(self: Any, endpoint_name: str, endpoint_config_name: str,
                                tags: Any) -> Any:
        if endpoint_name.lower() in {n.lower() for n in self.endpoints}:
            # SageMaker compares endpoint names case-insensitively here.
            arn = sm_models.FakeEndpoint.arn_formatter(endpoint_name, self.account_id,
                                                       self.region_name)
            raise ValidationError(message=f"Cannot create already existing endpoint "
                                          f"\"{arn}\".")
        endpoint = create_endpoint(self, endpoint_name, endpoint_config_name, tags)
        endpoint.endpoint_status = "Creating"
        world._pending[f"endpoint/{endpoint_name}"] = {
            "polls": world.polls, "config": endpoint_config_name,
            "failure": world.endpoint_fails}
        return endpoint

    def update_endpoint(self: Any, endpoint_name: str, endpoint_config_name: str) -> str:
        endpoint = self.endpoints.get(endpoint_name)
        if endpoint is None:
            arn = sm_models.FakeEndpoint.arn_formatter(endpoint_name, self.account_id,
                                                       self.region_name)
            raise ValidationError(message=f"Could not find endpoint '{arn}'.")
        self.describe_endpoint_config(endpoint_config_name)  # raises if it does not exist
        # A Failed endpoint can only be deleted (DescribeEndpoint's documentation).
        if endpoint.endpoint_status != "InService":
            raise ValidationError(message=f"Cannot update in-progress endpoint "
                                          f"'{endpoint.arn}'.")
        if endpoint_config_name in world.refused_configs:
            raise ValidationError(message=f"Cannot update endpoint '{endpoint.arn}' to "
                                          f"'{endpoint_config_name}' (scripted refusal).")
        world.updates.append((endpoint_name, endpoint_config_name))
        endpoint.endpoint_status = "Updating"
        world._pending[f"endpoint/{endpoint_name}"] = {
            "polls": world.polls, "failure": None,
            "config": endpoint.endpoint_config_name if world.update_rolls_back
            else endpoint_config_name}
        return str(endpoint.arn)

    def patched_describe_endpoint(self: Any, endpoint_name: str) -> Any:
        done = settle(f"endpoint/{endpoint_name}")
        endpoint = self.endpoints.get(endpoint_name)
        if done and endpoint is not None:
            endpoint.endpoint_config_name = done["config"]
            endpoint.endpoint_status = "Failed" if done["failure"] else "InService"
            endpoint.failure_reason = done["failure"]
        return describe_endpoint(self, endpoint_name)

    def update_endpoint_response(self: Any) -> Any:
        arn = self.sagemaker_backend.update_endpoint(
            self._get_param("EndpointName"), self._get_param("EndpointConfigName"))
        return ActionResult({"EndpointArn": arn})

    def patched_create_training_job(self: Any, training_job_name: str, *args: Any,
                                    **kwargs: Any) -> Any:
        job = create_training_job(self, training_job_name, *args, **kwargs)
        job.training_job_status = job.secondary_status = "InProgress"
        world._pending[f"training/{training_job_name}"] = {
            "polls": world.polls, "failure": world.training_fails}
        return job

    def patched_describe_training_job(self: Any, training_job_name: str) -> Any:
        done = settle(f"training/{training_job_name}")
        job = self.training_jobs.get(training_job_name)
        if done and job is not None:
            job.training_job_status = job.secondary_status = (
                "Failed" if done["failure"] else "Completed")
            if done["failure"]:
                job.failure_reason = done["failure"]
        return describe_training_job(self, training_job_name)

    def invoke_endpoint(self: Any, endpoint_name: str, body: bytes) -> tuple:
        sagemaker = sm_models.sagemaker_backends[self.account_id][self.region_name]
        endpoint = sagemaker.endpoints.get(endpoint_name)
        if endpoint is None or endpoint.endpoint_status not in ("InService", "Updating"):
            raise ValidationError(message=f"Endpoint {endpoint_name} of account "
                                          f"{self.account_id} not found.")
        version = _version(sagemaker, endpoint.endpoint_config_name)
        world.invocations.append(Invoked(endpoint_name, version, world.endpoints()))
        answer = world.answers.get(version or "", default_answer)(json.loads(body))
        return answer, "application/json", "AllTraffic", ""

    def invoke_endpoint_response(self: Any) -> Any:
        # moto looks for EndpointName among the query parameters; it is in the path.
        endpoint_name = urllib.parse.unquote(self.path.split("/")[2])
        body, content_type, variant, _ = self.sagemakerruntime_backend.invoke_endpoint(
            endpoint_name, self.body)
        return 200, {"Content-Type": content_type,
                     "x-Amzn-Invoked-Production-Variant": variant}, body

    def patched_register_scalable_target(self: Any, *args: Any, **kwargs: Any) -> Any:
        if world.scaling_fails:
            from moto.applicationautoscaling.exceptions import AWSValidationException

            raise AWSValidationException(world.scaling_fails)
        return register_scalable_target(self, *args, **kwargs)

    monkeypatch.setattr(backend_cls, "create_endpoint", patched_create_endpoint)
    monkeypatch.setattr(backend_cls, "update_endpoint", update_endpoint, raising=False)
    monkeypatch.setattr(backend_cls, "describe_endpoint", patched_describe_endpoint)
    monkeypatch.setattr(backend_cls, "create_training_job", patched_create_training_job)
    monkeypatch.setattr(backend_cls, "describe_training_job", patched_describe_training_job)
    monkeypatch.setattr(SageMakerResponse, "update_endpoint", update_endpoint_response,
                        raising=False)
    monkeypatch.setattr(SageMakerRuntimeBackend, "invoke_endpoint", invoke_endpoint)
    monkeypatch.setattr(SageMakerRuntimeResponse, "invoke_endpoint", invoke_endpoint_response)
    monkeypatch.setattr(ApplicationAutoscalingBackend, "register_scalable_target",
                        patched_register_scalable_target)
