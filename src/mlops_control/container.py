"""Entrypoint of the shared image: ``train`` and ``serve``, SageMaker's container contract.

SageMaker runs the image as ``<image> train`` for a training job and ``<image> serve`` for an
endpoint. The root (``/opt/ml``) comes from ``MLOPS_ML_ROOT`` so the very same entrypoint runs
locally under a temporary folder: that is how local training and local serving run.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from pathlib import Path

from mlops_control import names
from mlops_control.errors import ControlCentreError
from mlops_control.sm_layout import MLRoot


def _train(ml_root: MLRoot) -> int:
    from mlops_control import train_job

    try:
        train_job.run(ml_root)
    except ControlCentreError as exc:
        ml_root.write_failure(str(exc))
        print(f"[train] failed: {exc}", file=sys.stderr, flush=True)
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
