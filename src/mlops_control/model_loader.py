"""Load an MLflow model folder (the one holding ``MLmodel``) for scoring, leanly.

For the scikit-learn flavor the estimator is deserialised directly (skops with the trusted
types the MLmodel file lists, or pickle/cloudpickle), without importing mlflow: that import
alone costs about 1.5 s of every server start and every batch job. Any other flavor goes
through ``mlflow.pyfunc.load_model``.

Loading runs code chosen by the model's author (pickle) or instantiates the types its MLmodel
file trusts (skops): point this only at models from your own registry.
"""

from __future__ import annotations

import logging
import os
import pickle
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_control import signature as sig
from mlops_control.errors import ControlCentreError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

logger = logging.getLogger("mlops_control.model_loader")

MLMODEL = "MLmodel"


@dataclass
class LoadedModel:
    path: Path
    flavor: str
    """``sklearn`` (loaded here) or ``python_function`` (loaded through mlflow.pyfunc)."""
    signature: sig.Signature | None
    predict_fn: Callable[[Any], Any] = field(repr=False)
    input_columns: tuple[str, ...] | None
    """The order of the columns in a matrix given to :meth:`predict`; None when the model
    takes its inputs by position (tensor signature) or has no signature."""
    wants_frame: bool
    """The model needs a DataFrame (it was fitted with feature names, or is a pyfunc model
    with a column-based signature): :meth:`predict` wraps a matrix in one, once per call."""
    load_seconds: float
    name: str | None = None
    version: str | None = None
    run_id: str | None = None
    model_uuid: str | None = None
    raw: Any = field(default=None, repr=False)
    """The estimator (sklearn flavor) or the ``PyFuncModel``."""

    def predict(self, X: np.ndarray | pd.DataFrame) -> np.ndarray:
        """Predict for a 2-D matrix whose columns follow :attr:`input_columns`, or for a
        DataFrame. Returns a 1-D or 2-D numpy array."""
        import numpy as np

        if self.wants_frame and isinstance(X, np.ndarray) and self.input_columns is not None:
            import pandas as pd

            X = pd.DataFrame(X, columns=list(self.input_columns), copy=False)
        return _as_array(self.predict_fn(X))

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "run_id": self.run_id,
                "model_uuid": self.model_uuid, "flavor": self.flavor, "path": str(self.path)}


def read_mlmodel(model_dir: Path) -> dict[str, Any]:
    import yaml

    file = Path(model_dir) / MLMODEL
    if not file.is_file():
        raise ControlCentreError(f"{model_dir} is not an MLflow model folder: it has no {MLMODEL}")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    meta = yaml.load(file.read_text(), Loader=loader)  # a safe loader, whichever is available
    if not isinstance(meta, dict) or not isinstance(meta.get("flavors"), dict):
        raise ControlCentreError(f"{file} has no flavors: not an MLflow model")
    return meta


def load_model(model_dir: Path | str, name: str | None = None,
               version: str | None = None) -> LoadedModel:
    """Load the model in ``model_dir``; ``name``/``version`` (the registry's, which the MLmodel
    file does not record) are carried along for /version, logs and monitoring."""
    started = time.perf_counter()
    model_dir = Path(model_dir)
    meta = read_mlmodel(model_dir)
    signature = sig.parse(meta)
    flavors = meta["flavors"]
    sklearn_conf = flavors.get("sklearn")
    pyfunc_conf = flavors.get("python_function") or {}
    # Custom code paths need mlflow's import machinery, so such models take the pyfunc road.
    if sklearn_conf and not sklearn_conf.get("code"):
        estimator = _load_estimator(model_dir, sklearn_conf)
        method = pyfunc_conf.get("predict_fn") or "predict"
        if not hasattr(estimator, method):
            raise ControlCentreError(f"the model in {model_dir} has no method {method!r}")
        feature_names = _feature_names(estimator)
        columns = _column_order(signature, feature_names)
        loaded = LoadedModel(
            path=model_dir, flavor="sklearn", signature=signature,
            predict_fn=getattr(estimator, method), input_columns=columns,
            wants_frame=feature_names is not None, load_seconds=0.0, raw=estimator)
    elif pyfunc_conf:
        import mlflow.pyfunc

        pyfunc_model = mlflow.pyfunc.load_model(str(model_dir))
        columns = signature.input_names if signature and signature.is_column_based else None
        loaded = LoadedModel(
            path=model_dir, flavor="python_function", signature=signature,
            predict_fn=pyfunc_model.predict, input_columns=columns,
            wants_frame=columns is not None, load_seconds=0.0, raw=pyfunc_model)
    else:
        raise ControlCentreError(
            f"the model in {model_dir} has neither a sklearn nor a python_function flavor "
            f"(it has {', '.join(sorted(flavors))}): it cannot be scored")
    loaded.name, loaded.version = name, version
    loaded.run_id, loaded.model_uuid = meta.get("run_id"), meta.get("model_uuid")
    loaded.load_seconds = time.perf_counter() - started
    logger.info("model loaded", extra={"model_dir": str(model_dir), "flavor": loaded.flavor,
                                       "seconds": round(loaded.load_seconds, 3)})
    return loaded


_SKOPS_LOAD = threading.Lock()


def _load_estimator(model_dir: Path, conf: dict[str, Any]) -> Any:
    file = model_dir / str(conf.get("pickled_model", "model.pkl"))
    fmt = conf.get("serialization_format", "pickle")
    if not file.is_file():
        raise ControlCentreError(f"the model file {file} named in MLmodel does not exist")
    _warn_on_version_drift(conf.get("sklearn_version"))
    if fmt == "skops":
        import skops.io
        from skops.io.exceptions import UntrustedTypesFoundException

        try:
            # One at a time: skops imports each type's module by name as it meets it, and
            # threads importing sklearn's interdependent submodules at once can be handed a
            # partly initialised module (a model server loads once; a swap twice).
            with _SKOPS_LOAD:
                return skops.io.load(file, trusted=list(conf.get("skops_trusted_types") or []))
        except UntrustedTypesFoundException as exc:
            raise ControlCentreError(
                f"cannot load {file} with skops: {exc}. A skops model must list every type "
                "it holds in MLmodel's skops_trusted_types (log it with skops_trusted_types=[...])"
            ) from exc
        except Exception as exc:
            raise ControlCentreError(
                f"cannot load {file} with skops: {type(exc).__name__}: {exc}") from exc
    if fmt in ("pickle", "cloudpickle") and not _pickle_allowed():
        raise ControlCentreError(
            f"{file} is a {fmt} file and MLFLOW_ALLOW_PICKLE_DESERIALIZATION is off: loading it "
            "would run code of the model author's choosing. Log the model with skops, or set "
            "MLFLOW_ALLOW_PICKLE_DESERIALIZATION=true if you trust where it comes from")
    if fmt == "cloudpickle":
        import cloudpickle

        with open(file, "rb") as handle:
            return cloudpickle.load(handle)
    if fmt == "pickle":
        with open(file, "rb") as handle:
            return pickle.load(handle)  # models come from our own registry
    raise ControlCentreError(f"unknown serialization_format {fmt!r} in {model_dir / MLMODEL}")


def _pickle_allowed() -> bool:
    """MLflow's own switch for pickle-based models (on by default in MLflow 3.17), honoured so
    that turning it off protects our servers as it protects ``mlflow models serve``."""
    return os.environ.get("MLFLOW_ALLOW_PICKLE_DESERIALIZATION", "true").strip().lower() in (
        "true", "1", "yes")


def _warn_on_version_drift(trained_with: str | None) -> None:
    import sklearn

    if trained_with and trained_with != sklearn.__version__:
        logger.warning("model trained with another scikit-learn version",
                       extra={"trained_with": trained_with, "installed": sklearn.__version__})


def _feature_names(estimator: Any) -> tuple[str, ...] | None:
    names = getattr(estimator, "feature_names_in_", None)
    return tuple(str(n) for n in names) if names is not None else None


def _column_order(signature: sig.Signature | None,
                  feature_names: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """The estimator's own order when it knows its feature names (scikit-learn refuses the
    same columns in another order), else the signature's."""
    if signature is None or not signature.is_column_based:
        return None
    names = signature.input_names
    if feature_names is not None and set(feature_names) == set(names):
        return feature_names
    return names


def _as_array(output: Any) -> np.ndarray:
    import numpy as np

    to_numpy = getattr(output, "to_numpy", None)  # a pandas DataFrame or Series
    if to_numpy is not None:
        return np.asarray(to_numpy())
    return np.asarray(output)
