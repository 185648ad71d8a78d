"""A custom pyfunc model that needs a package the control centre's environment lacks
(``text-unidecode``): the model of the serving-environment tests. Saved with this file as its
code path, so it is imported as the top-level module ``unidecode_model`` wherever it loads."""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc


class Model(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        # Imported at load, as a model's own dependency would be: a server without the
        # package fails to start, naming it.
        import text_unidecode

        self.unidecode = text_unidecode.unidecode

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]  # MLflow reads hints as a schema
        return [len(self.unidecode("Ærøskøbing")) + int(v) for v in model_input.iloc[:, 0]]
