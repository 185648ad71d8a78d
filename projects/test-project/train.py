"""Train test-project: a random forest on the breast cancer data, logged and registered."""

from __future__ import annotations

import argparse
import os

import mlflow
import mlflow.sklearn
from mlflow.models import infer_signature
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split

from data import get_data

MODEL_NAME = "test-project"
# skops refuses tree ensembles unless their types are trusted by name. We trust exactly the
# types this project creates, because we trained them ourselves in this very process.
SKOPS_TRUSTED_TYPES = [
    "sklearn.ensemble._forest.RandomForestClassifier",
    "sklearn.tree._classes.DecisionTreeClassifier",
    "sklearn.tree._tree.Tree",
]
# Given explicitly: inferring them costs about five seconds per log_model call.
PIP_REQUIREMENTS = ["scikit-learn==1.9.1", "skops==0.16.0", "pandas==3.1.1"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n-estimators", type=int, default=50)
    parser.add_argument("--max-depth", type=int, default=8)
    parser.add_argument("--test-size", type=float, default=0.25)
    parser.add_argument("--random-state", type=int, default=42)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    test_env = os.environ.get("TEST_ENV", "").lower() == "true"
    X, y = get_data()
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=args.test_size, random_state=args.random_state,
        stratify=y if y.nunique() > 1 and y.value_counts().min() >= 2 else None,
    )
    model = RandomForestClassifier(
        n_estimators=args.n_estimators, max_depth=args.max_depth,
        random_state=args.random_state, n_jobs=1,
    ).fit(X_train, y_train)

    predicted = model.predict(X_test)
    metrics = {
        "accuracy": accuracy_score(y_test, predicted),
        "f1": f1_score(y_test, predicted, zero_division=0),
        "training_rows": float(len(X_train)),
    }
    if y_test.nunique() > 1:
        metrics["roc_auc"] = roc_auc_score(y_test, model.predict_proba(X_test)[:, 1])

    with mlflow.start_run():
        mlflow.log_params(vars(args))
        location = os.environ.get("MLOPS_DATA_LOCATION")
        if location:
            # The contract: say which data the run trained on, so lineage can record it.
            mlflow.log_input(mlflow.data.from_pandas(X, source=location, name="training"))
        mlflow.log_metrics(metrics)
        mlflow.sklearn.log_model(
            model,
            name="model",
            signature=infer_signature(X_train, model.predict(X_train)),
            input_example=X_train.head(5),
            pip_requirements=PIP_REQUIREMENTS,
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
            # TEST_ENV: the contract says registration is skipped.
            registered_model_name=None if test_env else MODEL_NAME,
        )
    print(f"trained {MODEL_NAME}: " + ", ".join(f"{k}={v:.4f}" for k, v in metrics.items()))


if __name__ == "__main__":
    main()
