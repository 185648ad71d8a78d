"""The registry's control tags as a small table, as the demo and ``mlops status`` print it."""

from __future__ import annotations

from mlops_control import names
from mlops_control.registry import ModelVersion

COLUMNS = (
    ("version", None), ("deploy", names.TAG_DEPLOY), ("deprecated", names.TAG_DEPRECATED),
    ("status", names.TAG_STATUS), ("endpoint", names.TAG_ENDPOINT),
    ("trigger", names.TAG_LINEAGE_TRIGGER), ("message", names.TAG_MESSAGE),
)


def format_versions(versions: list[ModelVersion], message_width: int = 70) -> str:
    rows = []
    for v in versions:
        row = []
        for title, key in COLUMNS:
            value = v.version if key is None else v.tags.get(key, "")
            if title == "message" and len(value) > message_width:
                value = value[: message_width - 1] + "…"
            row.append(value)
        rows.append(row)
    titles = [title for title, _ in COLUMNS]
    widths = [max([len(t)] + [len(r[i]) for r in rows]) for i, t in enumerate(titles)]
    lines = ["  ".join(t.ljust(w) for t, w in zip(titles, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines) if rows else "(no versions)"
