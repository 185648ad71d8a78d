"""Readable logs: ``12:00:01 receiver     webhook accepted  event=... model=...``.

Log calls pass their values as ``extra`` keys (never formatted into the message), and this
formatter prints them as key=value pairs, so the lines read well and grep well.
"""

from __future__ import annotations

import logging
import sys

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
SECRET_WORDS = ("secret", "password", "token", "authorization", "signature")


class KeyValueFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = []
        for key, value in record.__dict__.items():
            if key in _STANDARD or key.startswith("_") or value is None:
                continue
            if any(word in key.lower() for word in SECRET_WORDS):
                value = "***"
            text = str(value)
            extras.append(f"{key}={text if ' ' not in text else repr(text)}")
        source = record.name.removeprefix("mlops_control.")
        line = f"{self.formatTime(record, '%H:%M:%S')} {source:<11} {record.getMessage()}"
        if extras:
            line += "  " + " ".join(extras)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger("mlops_control")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
