"""The registry's control tags and aliases as a small table, as the demo and ``mlops status``
print it."""

from __future__ import annotations

from collections.abc import Callable

from mlops_control import names
from mlops_control.registry import ModelVersion


def _tag(key: str) -> Callable[[ModelVersion], str]:
    return lambda v: v.tags.get(key, "")


def _aliases(v: ModelVersion) -> str:
    """``@champion,@staging``: the model's aliases that point at this version (an alias
    naming a stage steers it, as a ``deploy`` tag does)."""
    return ",".join(f"@{alias}" for alias in v.aliases)


COLUMNS: tuple[tuple[str, Callable[[ModelVersion], str]], ...] = (
    ("version", lambda v: v.version), ("aliases", _aliases), ("deploy", _tag(names.TAG_DEPLOY)),
    ("deprecated", _tag(names.TAG_DEPRECATED)), ("status", _tag(names.TAG_STATUS)),
    ("endpoint", _tag(names.TAG_ENDPOINT)), ("trigger", _tag(names.TAG_LINEAGE_TRIGGER)),
    ("message", _tag(names.TAG_MESSAGE)),
)


def format_versions(versions: list[ModelVersion], message_width: int = 70) -> str:
    rows = []
    for v in versions:
        row = []
        for title, value_of in COLUMNS:
            value = value_of(v)
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
