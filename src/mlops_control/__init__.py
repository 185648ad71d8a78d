"""MLOps control centre: train, track, deploy, monitor and retire models through MLflow tags.

This package is shared by the CLI, the training image and the Lambdas. Its top level imports
nothing heavy, so that a Lambda can import the parts it needs (names, events, the REST client,
the workflow steps) without pulling in mlflow, pandas or scikit-learn.
"""

__version__ = "0.1.0"
