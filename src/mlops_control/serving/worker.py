"""One worker process of the scoring server (started by :mod:`serving.server`, never by hand).

It inherits the listening socket (shared by every worker) and one end of a socket pair to the
parent, over which JSON lines flow:

    parent -> worker  {"op": "prepare", "id": 3, "model_dir": "...", "name": ..., "version": ...}
    worker -> parent  {"op": "prepared", "id": 3, "ok": true} | {... "ok": false, "error": "..."}
    parent -> worker  {"op": "commit", "id": 3}  -> {"op": "committed", "id": 3}
    parent -> worker  {"op": "abort", "id": 3}
    worker -> parent  {"op": "ready", "pid": ..., "model": {...}} once serving,
                      {"op": "failed", "error": "..."} if its first model cannot be loaded.

A new model is loaded in a thread beside the live one, while requests keep being answered;
``commit`` then switches between two batches, so no request sees half a swap.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

from mlops_control import logs
from mlops_control.serving import observer as observer_mod
from mlops_control.serving.app import ModelSlot, ScoringApp
from mlops_control.serving.batcher import MicroBatcher
from mlops_control.serving.config import ServingConfig
from mlops_control.serving.http import Acceptor, Limits
from mlops_control.serving.served import ServedModel, prepare

logger = logging.getLogger("mlops_control.serving.worker")


class Worker:
    def __init__(self, listen: socket.socket, channel: socket.socket, model_dir: Path,
                 name: str | None, version: str | None, config: ServingConfig) -> None:
        self.listen = listen
        self.channel = channel
        self.model_dir = model_dir
        self.name = name
        self.version = version
        self.config = config
        self.stop = asyncio.Event()
        self.writer: asyncio.StreamWriter | None = None

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop.set)
        reader, self.writer = await asyncio.open_unix_connection(sock=self.channel)
        try:
            served = await loop.run_in_executor(None, prepare, self.model_dir, self.name,
                                                self.version)
            observer = observer_mod.load(self.config.observer)
        except Exception as exc:
            logger.error("model failed to load", extra={"model_dir": str(self.model_dir),
                                                        "error": str(exc)})
            await self._send({"op": "failed", "error": f"{type(exc).__name__}: {exc}"})
            return 1
        background = None
        if not isinstance(observer, observer_mod.NoOpObserver):
            observer = background = observer_mod.BackgroundObserver(observer)
        slot = ModelSlot(served)
        batcher = MicroBatcher(observer, self.config.max_batch_rows)
        app = ScoringApp(slot, batcher, headerless_csv=self.config.headerless_csv)
        acceptor = Acceptor(self.listen, app,
                            Limits(self.config.max_body_bytes, self.config.keepalive_s))
        acceptor.start()
        await self._send({"op": "ready", "pid": os.getpid(), "model": served.model.describe()})
        logger.info("worker serving", extra={"pid": os.getpid(), "model": served.label})
        control = asyncio.create_task(self._control(reader, slot))
        await self.stop.wait()
        await acceptor.drain(self.config.shutdown_timeout_s)
        control.cancel()
        if background is not None:
            background.close()
        logger.info("worker stopped", extra={"pid": os.getpid(), "batches": batcher.batches,
                                             "requests": batcher.requests})
        return 0

    async def _control(self, reader: asyncio.StreamReader, slot: ModelSlot) -> None:
        while True:
            line = await reader.readline()
            if not line:
                logger.warning("the server process is gone; stopping")
                self.stop.set()
                return
            try:
                message = json.loads(line)
                await self._handle(message, slot)
            except Exception:  # a bad message must not stop the worker
                logger.exception("control message failed", extra={"line": line[:200]})

    async def _handle(self, message: dict[str, Any], slot: ModelSlot) -> None:
        op, swap_id = message.get("op"), int(message.get("id", 0))
        if op == "prepare":
            loop = asyncio.get_running_loop()
            try:
                staged: ServedModel = await loop.run_in_executor(
                    None, prepare, Path(message["model_dir"]), message.get("name"),
                    message.get("version"))
            except Exception as exc:
                await self._send({"op": "prepared", "id": swap_id, "ok": False,
                                  "error": f"{type(exc).__name__}: {exc}"})
                return
            slot.staged[swap_id] = staged
            await self._send({"op": "prepared", "id": swap_id, "ok": True})
        elif op == "commit":
            staged = slot.staged.pop(swap_id)
            slot.live = staged
            slot.staged.clear()
            logger.info("model switched", extra={"pid": os.getpid(), "model": staged.label})
            await self._send({"op": "committed", "id": swap_id})
        elif op == "abort":
            slot.staged.pop(swap_id, None)

    async def _send(self, message: dict[str, Any]) -> None:
        assert self.writer is not None
        self.writer.write(json.dumps(message).encode() + b"\n")
        await self.writer.drain()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="a scoring server worker (internal)")
    parser.add_argument("--listen-fd", type=int, required=True)
    parser.add_argument("--channel-fd", type=int, required=True)
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--name")
    parser.add_argument("--version")
    args = parser.parse_args(argv)
    logs.setup()
    listen = socket.socket(fileno=args.listen_fd)
    channel = socket.socket(fileno=args.channel_fd)
    worker = Worker(listen, channel, args.model_dir, args.name, args.version,
                    ServingConfig.from_env())
    return asyncio.run(worker.run())


if __name__ == "__main__":
    sys.exit(main())
