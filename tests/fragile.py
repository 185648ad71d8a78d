"""A model class for tests, importable by name so that a pickled instance loads in a server
worker process (which has the repository on its PYTHONPATH)."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import RandomForestClassifier


class FragileForest(ClassifierMixin, BaseEstimator):
    def fit(self, X: Any, y: Any) -> FragileForest:
        self.forest_ = RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
        self.classes_ = self.forest_.classes_
        return self

    def predict(self, X: Any) -> np.ndarray:
        radius = np.asarray(X["mean_radius"] if hasattr(X, "columns") else X[:, 0])
        if (radius < 0).any():
            raise ValueError("a negative mean_radius broke the model")
        return np.asarray(self.forest_.predict(X))


class SlowForest(FragileForest):
    """Takes half a second per predict call: requests stay in flight long enough to be
    caught by a shutdown."""

    def predict(self, X: Any) -> np.ndarray:
        import time

        time.sleep(0.5)
        return super().predict(X)
