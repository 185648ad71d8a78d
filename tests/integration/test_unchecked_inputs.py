"""Bad requests to models whose input cannot be checked here (no signature, or an integer
tensor signature only MLflow checks) are the client's error: 400 naming the problem, never a
500 that would count against the endpoint's 5xx alarm (issue 13.6). A model bug behind a
checked signature stays a 500 (tests/integration/test_serving.py, the fragile model)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.model_fixtures import Shelf
from tests.models import PIP, SavedModel
from tests.serving_process import Server, serving

pytestmark = pytest.mark.integration

BAD: dict[str, tuple[bytes, str]] = {
    "too few values": (b'{"instances": [[1, 2, 3]]}', "features"),
    "strings for numbers": (b'{"instances": [["a", "b", "c", "d"]]}', "could not convert"),
    "unknown columns": (b'{"dataframe_split": {"columns": ["x", "y"], "data": [[1, 2]]}}',
                        "feature"),
    "records of unknown columns": (b'{"dataframe_records": [{"x": 1}]}', "feature"),
    "a 3-D input": (b'{"inputs": [[[1, 2], [3, 4]]]}', "dim"),
    "no rows": (b'{"instances": []}', "no rows"),
    "ragged rows": (b'{"instances": [[1, 2, 3, 4], [1, 2]]}', "not a valid table"),
    "not JSON": (b"{not json", "not valid JSON"),
    "no known key": (b'{"data": [[1, 2, 3, 4]]}', "exactly one of the keys"),
    "csv of the wrong width": (b"a,b\n1,2\n", "cannot take this input"),
}


def integer_tensor(path: Path) -> SavedModel:
    """A forest fitted on an int64 matrix: its tensor signature is one MLflow checks."""
    import mlflow.sklearn
    from mlflow.models import infer_signature
    from sklearn.ensemble import RandomForestClassifier

    rng = np.random.default_rng(0)
    X = rng.integers(0, 10, size=(100, 4)).astype("int64")
    model = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, X[:, 0] > 4)
    mlflow.sklearn.save_model(model, str(path), signature=infer_signature(X, model.predict(X)),
                              pip_requirements=PIP, serialization_format="cloudpickle")
    return SavedModel(path, model, X)


@pytest.fixture(scope="module", params=["unsigned", "integer tensor"])
def unchecked(request: pytest.FixtureRequest, shelf: Shelf,
              tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Any]]:
    tmp = tmp_path_factory.mktemp("unchecked")
    saved = shelf.unsigned() if request.param == "unsigned" else integer_tensor(tmp / "m")
    with serving(saved.path, tmp, workers=1) as server:
        yield server, saved


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_a_400_naming_the_problem(unchecked, case: str) -> None:
    server, saved = unchecked
    body, words = BAD[case]
    content_type = "text/csv" if case.startswith("csv") else "application/json"
    status, answer = server.post(body, content_type)
    assert status == 400, (case, answer)
    assert words.lower() in answer["message"].lower(), (case, answer)
    # and the server goes on answering good requests
    good = np.asarray(saved.X)[:2].tolist()
    assert server.post({"instances": good}) == (
        200, {"predictions": saved.predict(np.asarray(saved.X)[:2]).tolist()})


PICKY = '''
import mlflow.pyfunc


class LibraryError(Exception):
    """As LightGBM's LightGBMError or XGBoost's XGBoostError: no ValueError."""


class Picky(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        if "boom" in model_input.columns:
            raise MemoryError("cannot allocate 8 GiB")
        if "x" not in model_input.columns:
            raise LibraryError("The number of features in data (1) is not the same as it "
                               "was in training data (2)")
        if isinstance(model_input["x"].iloc[0], str):
            return model_input.no_such_column  # AttributeError
        return (model_input["x"] * 2).tolist()


mlflow.models.set_model(Picky())
'''


def test_any_exception_of_an_unsigned_model_is_the_requests_fault_but_running_out_of_memory(
        tmp_path) -> None:
    """Issue 13.6: an unsigned model's predict is its only input check, whatever it raises
    (a library's own error class, an AttributeError): 400, as MLflow's server answers. Only
    the server's own trouble (out of memory) stays a 500 for the 5xx alarm."""
    import mlflow.pyfunc

    code = tmp_path / "picky.py"
    code.write_text(PICKY)
    mlflow.pyfunc.save_model(str(tmp_path / "model"), python_model=str(code),
                             pip_requirements=["pandas"])
    assert mlflow.models.Model.load(str(tmp_path / "model")).signature is None
    with serving(tmp_path / "model", tmp_path, workers=1) as server:
        assert server.post({"dataframe_records": [{"x": 1.5}]}) == (200, {"predictions": [3.0]})
        status, answer = server.post({"dataframe_records": [{"y": 1.5}]})
        assert (status, answer["message"]) == (400, (
            "the model cannot take this input: LibraryError: The number of features in data "
            "(1) is not the same as it was in training data (2)")), answer
        status, answer = server.post({"dataframe_records": [{"x": "1"}]})
        assert status == 400 and "AttributeError" in answer["message"], answer
        status, answer = server.post({"dataframe_records": [{"x": 1, "boom": 1}]})
        assert (status, answer["error_code"]) == (500, "MODEL_ERROR"), answer
        assert "MemoryError: cannot allocate 8 GiB" in answer["message"]
        assert server.post({"dataframe_records": [{"x": 2.0}]}) == (200, {"predictions": [4.0]})
