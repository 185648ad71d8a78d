"""Loading MLflow model folders leanly: same predictions as the estimator, no mlflow import."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mlops_control import signature as sig
from mlops_control.errors import ControlCentreError
from mlops_control.model_loader import load_model
from tests.model_fixtures import Shelf

REPO = Path(__file__).resolve().parents[2]


def test_a_skops_forest_predicts_like_the_estimator_it_was_saved_from(shelf: Shelf) -> None:
    saved = shelf.forest()
    model = load_model(saved.path, name="test-project", version="3")
    assert model.flavor == "sklearn"
    assert (model.name, model.version) == ("test-project", "3")
    assert model.load_seconds > 0
    X = saved.X.iloc[:50]
    np.testing.assert_array_equal(model.predict(X), saved.predict(X))
    # A matrix in the model's column order gives the same answers as the DataFrame.
    assert model.input_columns == tuple(X.columns)
    np.testing.assert_array_equal(model.predict(X.to_numpy()), saved.predict(X))


def test_the_signature_is_read_with_names_types_and_required_flags(shelf: Shelf) -> None:
    model = load_model(shelf.mixed().path)
    assert model.signature is not None
    columns = {c.name: (c.type, c.required) for c in model.signature.columns}
    assert columns == {"age": ("long", True), "member": ("boolean", True),
                       "city": ("string", True), "score": ("double", True)}
    assert model.signature.is_column_based
    assert model.signature.outputs == (sig.TensorSpec(None, "int64", (-1,)),)


def test_a_model_fitted_on_a_matrix_has_a_tensor_signature(shelf: Shelf) -> None:
    saved = shelf.tensor()
    model = load_model(saved.path)
    assert model.signature is not None
    assert model.signature.tensor == sig.TensorSpec(None, "float64", (-1, 4))
    assert model.input_columns is None and not model.wants_frame
    np.testing.assert_array_equal(model.predict(saved.X), saved.predict(saved.X))


def test_pickle_and_cloudpickle_models_load_too(shelf: Shelf) -> None:
    for saved in (shelf.mixed(), shelf.probabilities()):
        model = load_model(saved.path)
        np.testing.assert_array_equal(model.predict(saved.X[:20]), saved.predict(saved.X[:20]))


def test_pickle_models_are_refused_when_mlflow_s_pickle_switch_is_off(
        shelf: Shelf, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "false")
    with pytest.raises(ControlCentreError) as err:
        load_model(shelf.probabilities().path)  # saved with cloudpickle
    assert "cloudpickle" in str(err.value) and "MLFLOW_ALLOW_PICKLE_DESERIALIZATION" in str(err.value)
    load_model(shelf.forest().path)  # skops needs no such trust


def test_the_predict_function_named_in_mlmodel_is_used(shelf: Shelf) -> None:
    saved = shelf.probabilities()
    assert load_model(saved.path).predict(saved.X[:4]).shape == (4, 2)


def test_loading_a_sklearn_model_does_not_import_mlflow(shelf: Shelf) -> None:
    path = shelf.forest().path
    code = ("import sys; from mlops_control.model_loader import load_model; "
            f"load_model({str(path)!r}); print('mlflow' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO)
    assert out.stdout.strip() == "False"


def test_a_folder_without_mlmodel_is_refused_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(ControlCentreError, match="no MLmodel"):
        load_model(tmp_path)


def test_skops_types_missing_from_the_trusted_list_are_refused(shelf: Shelf,
                                                              tmp_path: Path) -> None:
    import shutil

    import yaml

    folder = tmp_path / "model"
    shutil.copytree(shelf.forest().path, folder)
    mlmodel = yaml.safe_load((folder / "MLmodel").read_text())
    mlmodel["flavors"]["sklearn"]["skops_trusted_types"] = []
    (folder / "MLmodel").write_text(yaml.safe_dump(mlmodel))
    with pytest.raises(ControlCentreError, match="skops_trusted_types"):
        load_model(folder)


def test_a_damaged_skops_file_is_named_for_what_it_is_not_for_trusted_types(
        shelf: Shelf, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(shelf.forest().path, folder)
    skops_file = next(folder.glob("*.skops"))
    skops_file.write_bytes(skops_file.read_bytes()[:100])  # a truncated copy
    with pytest.raises(ControlCentreError) as err:
        load_model(folder)
    assert f"cannot load {skops_file} with skops: BadZipFile: " in str(err.value)
    assert "skops_trusted_types" not in str(err.value)


def test_other_flavors_load_through_mlflow_pyfunc(tmp_path: Path) -> None:
    import mlflow.pyfunc
    import pandas as pd
    from mlflow.models import infer_signature

    class Doubler(mlflow.pyfunc.PythonModel):
        def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
            return model_input["x"] * 2

    frame = pd.DataFrame({"x": [1.0, 2.0]})
    mlflow.pyfunc.save_model(str(tmp_path / "m"), python_model=Doubler(), pip_requirements=[],
                             signature=infer_signature(frame, frame["x"]))
    model = load_model(tmp_path / "m")
    assert model.flavor == "python_function"
    np.testing.assert_array_equal(model.predict(np.array([[1.0], [4.0]])), [2.0, 8.0])


def test_signature_parsing_understands_every_spec_kind() -> None:
    inputs = [{"type": "double", "name": "a", "required": False},
              {"type": "array", "items": {"type": "long"}, "name": "b"},
              {"type": "tensor", "tensor-spec": {"dtype": "float32", "shape": [-1, 3]}}]
    parsed = sig.parse({"signature": {"inputs": json.dumps(inputs), "outputs": None}})
    assert parsed is not None
    assert parsed.inputs == (sig.ColumnSpec("a", "double", False), sig.ColumnSpec("b", "array"),
                             sig.TensorSpec(None, "float32", (-1, 3)))
    assert not parsed.is_column_based
    assert sig.parse({}) is None
