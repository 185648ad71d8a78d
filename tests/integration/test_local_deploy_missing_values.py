"""Issue 13.1 end to end: a version whose smoke slice (training rows, as train_job.py writes
it) has NaN in string columns deploys through the local backend, smoke test and all."""

from __future__ import annotations

import json
import math
import urllib.request

import pytest

from mlops_control import names
from mlops_control.backends.local import LocalBackend
from mlops_control.registry import RegistryClient
from mlops_control.steps.backend import DeployTarget
from tests.conftest import make_settings
from tests.live import free_block
from tests.registered_models import fresh_name, register_folder
from tests.titanic import titanic

pytestmark = pytest.mark.integration


def test_a_smoke_slice_with_nan_strings_deploys_and_serves(mlflow_server,
                                                           tmp_path_factory) -> None:
    tmp = tmp_path_factory.mktemp("nan-deploy")
    saved = titanic(tmp / "model")
    X = saved.X.iloc[:25]
    # train_job._smoke_test_payload's shape: DataFrame.to_dict(orient="split"), NaN kept.
    split = X.to_dict(orient="split")
    split.pop("index", None)
    payload = {"dataframe_split": split}
    assert any(isinstance(v, float) and math.isnan(v) for row in split["data"] for v in row[4:])

    settings = make_settings(tmp, endpoint_base_port=free_block())
    backend = LocalBackend(settings, RegistryClient(mlflow_server.url), workers=1)
    name = fresh_name("titanic")
    version = register_folder(mlflow_server.url, name, saved.path)
    try:
        backend.deploy(DeployTarget(project=name, stage="staging", version=version,
                                    endpoint=names.endpoint_name(name, "staging"),
                                    run_id=None, smoke_payload=payload))
        port = backend.ports.port(name, "staging")
        body = json.dumps(payload).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert json.loads(response.read())["predictions"] == saved.predict(X).tolist()
    finally:
        backend.retire(name, "staging")
