"""``python -m mlops_control.serving <model_dir>``: serve a model folder directly (tests,
benchmarks, debugging). The control centre and the shared image go through ``server.run``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mlops_control.errors import ControlCentreError
from mlops_control.serving import server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mlops_control.serving",
                                     description=__doc__)
    parser.add_argument("model_dir", type=Path, help="folder holding the MLmodel file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5050)
    parser.add_argument("--workers", type=int, default=None,
                        help="worker processes (default: one per core)")
    parser.add_argument("--control-socket", type=Path, default=None)
    parser.add_argument("--name", default=None, help="registered model name (for /version)")
    parser.add_argument("--version", default=None, help="registered model version")
    args = parser.parse_args(argv)
    try:
        server.run(args.model_dir, host=args.host, port=args.port, workers=args.workers,
                   control_socket=args.control_socket, name=args.name, version=args.version)
    except ControlCentreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
