"""Entrypoint of the shared image: ``train`` and ``serve``, SageMaker's container contract.

SageMaker runs the image as ``<image> train`` for a training job and ``<image> serve`` for an
endpoint. The root (``/opt/ml``) comes from ``MLOPS_ML_ROOT`` so the very same entrypoint runs
locally under a temporary folder: that is how local training and local serving run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from mlops_control import names
from mlops_control.errors import ControlCentreError
from mlops_control.sm_layout import MLRoot


def load_mlflow_credentials(environ: MutableMapping[str, str] | None = None,
                            secretsmanager: Any = None) -> bool:
    """Put MLflow's basic-auth credentials into ``MLFLOW_TRACKING_USERNAME``/``PASSWORD``
    from the Secrets Manager secret named by ``MLOPS_MLFLOW_AUTH_SECRET_ARN``, as the Lambdas
    do, before anything imports mlflow (which reads them from the environment).

    Credentials already in the environment win (a person running the image by hand). Returns
    whether the secret was read. An unreadable secret fails the job with a reason naming it,
    rather than a 401 from MLflow halfway through training."""
    env = os.environ if environ is None else environ
    arn = env.get(names.ENV_MLFLOW_AUTH_SECRET_ARN, "")
    if not arn or env.get("MLFLOW_TRACKING_USERNAME") or env.get("MLFLOW_TRACKING_TOKEN"):
        return False
    if secretsmanager is None:
        import boto3

        # The ARN names the secret's region; a training container need not have AWS_REGION.
        parts = arn.split(":")
        region = parts[3] if len(parts) > 3 and parts[3] else None
        secretsmanager = boto3.client("secretsmanager", region_name=region)
    try:
        raw = secretsmanager.get_secret_value(SecretId=arn)["SecretString"]
        credentials = json.loads(raw)
        username, password = credentials["username"], credentials["password"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ControlCentreError(
            f"the MLflow credentials secret {arn} must hold JSON "
            f'{{"username": ..., "password": ...}} ({type(exc).__name__})') from None
    except Exception as exc:  # botocore's ClientError and connection errors
        raise ControlCentreError(
            f"cannot read the MLflow credentials secret {arn}: {exc}") from None
    env["MLFLOW_TRACKING_USERNAME"] = str(username)
    env["MLFLOW_TRACKING_PASSWORD"] = str(password)
    return True


class Stopped(Exception):
    """SIGTERM: a local --timeout, SageMaker's MaxRuntimeInSeconds or StopTrainingJob."""


def _stopped(signum: int, frame: object) -> None:
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the clean-up
    raise Stopped("the job was stopped (SIGTERM: a timeout, or StopTrainingJob)")


def _train(ml_root: MLRoot) -> int:
    import signal

    from mlops_control import train_job

    # Unhandled, SIGTERM ends the process at once: versions the script had registered would
    # stay behind, deployable. Raised as an exception, the job cleans up and says why.
    previous = signal.signal(signal.SIGTERM, _stopped)
    try:
        return _train_reporting(ml_root, train_job)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _train_reporting(ml_root: MLRoot, train_job: Any) -> int:
    try:
        if load_mlflow_credentials():
            print("[train] MLflow credentials read from Secrets Manager", file=sys.stderr,
                  flush=True)
        train_job.run(ml_root)
    except ControlCentreError as exc:
        # Notes say what was cleaned up after the failure (train_job adds them).
        reason = "; ".join([str(exc), *getattr(exc, "__notes__", [])])
        ml_root.write_failure(reason)
        print(f"[train] failed: {reason}", file=sys.stderr, flush=True)
        return 1
    except BaseException as exc:  # the job must always say why it failed
        reason = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        ml_root.write_failure(f"training failed: {reason}")
        traceback.print_exc()
        return 1
    return 0


def _serve(ml_root: MLRoot, host: str, port: int, workers: int | None,
           control_socket: Path | None) -> int:
    from mlops_control.serving import server

    server.run(ml_root.model_dir, host=host, port=port, workers=workers,
               control_socket=control_socket)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mlops-container",
        description="The shared image's entrypoint (SageMaker bring-your-own-container).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("train", help="run the training job described by "
                   "<root>/input/config/hyperparameters.json")
    serve = sub.add_parser("serve", help="serve <root>/model on GET /ping, POST /invocations")
    serve.add_argument("--host", default=os.environ.get("MLOPS_SERVE_HOST", "0.0.0.0"))
    serve.add_argument("--port", type=int,
                       default=int(os.environ.get("SAGEMAKER_BIND_TO_PORT",
                                                  names.SERVING_PORT_IN_CONTAINER)))
    serve.add_argument("--workers", type=int, default=None,
                       help="worker processes (default: one per core)")
    serve.add_argument("--control-socket", type=Path, default=None,
                       help="unix socket through which the local control centre switches "
                       "the model without downtime (not used on SageMaker)")
    args = parser.parse_args(argv)
    ml_root = MLRoot.from_env()
    if args.command == "train":
        return _train(ml_root)
    return _serve(ml_root, args.host, args.port, args.workers, args.control_socket)


if __name__ == "__main__":
    sys.exit(main())
