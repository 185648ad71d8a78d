"""``mlops remote train``: a SageMaker training job through the Train state machine, on the
project's whole data prefix, exactly as new data would start it (but ``trigger=manual``)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from mlops_control import names
from mlops_control.errors import ControlCentreError
from mlops_control.remote.outputs import StackOutputs


def training_input(outputs: StackOutputs, project: str, token: str,
                   data_uri: str | None = None) -> dict[str, Any]:
    """The Train state machine's input (the same keys the data trigger sends)."""
    if not names.PROJECT_NAME_PATTERN.match(project):
        raise ControlCentreError(f"{project!r} is not a project name")
    location = data_uri or (f"s3://{outputs.data_bucket}/"
                            f"{outputs.data_prefix.strip('/')}/{project}/")
    event_id = f"manual-{token}"
    return {"project": project, "data_location": location, "data_object": location,
            "data_version": event_id, "trigger": str(names.Trigger.MANUAL),
            "event_id": event_id,
            "training_job_name": names.training_job_name(project, event_id)}


def start(sfn: Any, outputs: StackOutputs, project: str, token: str,
          data_uri: str | None = None) -> tuple[str, dict[str, Any]]:
    body = training_input(outputs, project, token, data_uri)
    arn = sfn.start_execution(stateMachineArn=outputs.train_state_machine,
                              name=f"{project}-manual-{token}"[:80],
                              input=json.dumps(body))["executionArn"]
    return str(arn), body


def wait(sfn: Any, execution_arn: str, timeout_s: float = 25 * 3600.0, poll_s: float = 30.0,
         sleep: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic) -> dict[str, Any]:
    deadline = clock() + timeout_s
    while True:
        described = dict(sfn.describe_execution(executionArn=execution_arn))
        if described["status"] == "SUCCEEDED":
            return described
        if described["status"] != "RUNNING":
            raise ControlCentreError(f"training {described['status']}: "
                                     f"{described.get('cause') or described.get('error') or ''}"
                                     " (the notification topic has the details)")
        if clock() > deadline:
            raise ControlCentreError(f"training still running after {timeout_s:.0f}s")
        sleep(poll_s)
