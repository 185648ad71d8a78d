"""A control centre in a process of its own, for the crash tests.

    python -m tests.reliability.centre_process <tracking uri>

Settings come from the environment as for ``mlops up`` (``MLOPS_STATE_DIR``,
``MLOPS_RECEIVER_PORT``, ``MLOPS_ENDPOINT_PORT``...). With ``RELIABILITY_FAULT`` set, the
process SIGKILLs itself at that point of its first deployment that reaches it, the way a
power cut or the OOM killer would stop it (no clean-up, no finally blocks):

- ``first-start``: a first deployment's endpoint process is up and smoke-tested, not yet
  recorded;
- ``candidate``: a new version's candidate process is up and smoke-tested, not yet stopped;
- ``swap``: the swap is sent to the live endpoint, the answer not yet read;
- ``recorded``: the endpoint serves the new version and its record says so; no tag written;
- ``half-tagged``: the new version is tagged in_service, the old one not yet superseded.

It stops cleanly on SIGTERM, leaving its endpoints running as ``mlops up`` would not (so
the tests can also restart it over live endpoints); the tests stop those by pid.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any

from mlops_control import logs, procs
from mlops_control import settings as settings_mod
from mlops_control.backends import local
from mlops_control.control_centre import ControlCentre
from mlops_control.steps import apply, status

FAULT = os.environ.get("RELIABILITY_FAULT", "")


def die(point: str) -> None:
    sys.stderr.write(f"FAULT {point}: SIGKILL\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def install(fault: str) -> None:
    if fault == "first-start":
        def save(self: local.LocalBackend, record: local.EndpointRecord) -> None:
            die(fault)

        local.LocalBackend._save = save  # type: ignore[method-assign]
    elif fault == "candidate":
        stop = procs.Managed.stop

        def stop_candidate(self: procs.Managed, timeout: float = 15.0) -> bool:
            if self.name.endswith("-candidate"):
                die(fault)
            return stop(self, timeout)

        procs.Managed.stop = stop_candidate  # type: ignore[method-assign]
    elif fault == "swap":
        def control(sock: Path, message: dict[str, Any], timeout: float = 30.0) -> Any:
            import json

            conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            conn.connect(str(sock))
            conn.sendall(json.dumps(message).encode() + b"\n")
            time.sleep(0.2)  # the endpoint has begun loading the new model
            die(fault)

        local.control = control  # type: ignore[assignment]
    elif fault == "recorded":
        succeed = apply.succeed

        def succeed_then_die(registry: Any, target: Any, replaced: str | None,
                             *args: Any, **kwargs: Any) -> None:
            if replaced is not None:  # a switch, not a first deployment
                die(fault)
            succeed(registry, target, replaced, *args, **kwargs)

        apply.succeed = succeed_then_die  # type: ignore[assignment]
    elif fault == "half-tagged":
        def clear(*args: Any, **kwargs: Any) -> None:
            die(fault)

        status.clear_deploy_tag = clear  # type: ignore[assignment]
    elif fault:
        raise SystemExit(f"unknown fault {fault!r}")


def main() -> int:
    logs.setup()
    install(FAULT)
    settings = settings_mod.load()
    centre = ControlCentre(settings, sys.argv[1], reconcile_interval_s=float(
        os.environ.get("RELIABILITY_RECONCILE_S", "3600")), serving_workers=1)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    centre.start()
    sys.stderr.write(f"READY receiver={centre.receiver.port}\n")
    sys.stderr.flush()
    stop.wait()
    centre.stop(stop_endpoints=os.environ.get("RELIABILITY_KEEP_ENDPOINTS") != "1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
