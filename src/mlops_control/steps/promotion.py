"""The optional promotion gate: ``projects/<project>/promotion.yaml``.

    metric: accuracy       # a metric the training run logs
    threshold: 0.9
    direction: higher      # higher (default) or lower is better
    stage: staging         # the stage a passing version is tagged for

After a version is registered, the gate tags it ``deploy=<stage>`` when the run's metric
passes, and records why in ``lineage.promotion`` either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_control import names
from mlops_control.errors import ContractError

GATE_FILE = "promotion.yaml"


@dataclass(frozen=True)
class Gate:
    metric: str
    threshold: float
    stage: str
    direction: str = "higher"


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    stage: str


def load(project_dir: Path) -> Gate | None:
    file = project_dir / GATE_FILE
    if not file.is_file():
        return None
    import yaml

    project = project_dir.name
    try:
        raw: Any = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise ContractError(project, GATE_FILE, f"is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ContractError(project, GATE_FILE, "must be a mapping")
    missing = [k for k in ("metric", "threshold", "stage") if k not in raw]
    if missing:
        raise ContractError(project, GATE_FILE, f"lacks {', '.join(missing)}")
    direction = str(raw.get("direction", "higher"))
    if direction not in ("higher", "lower"):
        raise ContractError(project, GATE_FILE, "direction must be 'higher' or 'lower'")
    stage = str(raw["stage"])
    if not names.STAGE_PATTERN.match(stage):
        raise ContractError(project, GATE_FILE, f"stage {stage!r} is not a valid stage name")
    try:
        threshold = float(raw["threshold"])
    except (TypeError, ValueError):
        raise ContractError(project, GATE_FILE, "threshold must be a number") from None
    return Gate(metric=str(raw["metric"]), threshold=threshold, stage=stage,
                direction=direction)


def evaluate(gate: Gate, metrics: dict[str, float]) -> Decision:
    value = metrics.get(gate.metric)
    if value is None:
        return Decision(False, f"metric {gate.metric!r} was not logged by the run; "
                        f"logged: {', '.join(sorted(metrics)) or 'none'}", gate.stage)
    passed = value >= gate.threshold if gate.direction == "higher" else value <= gate.threshold
    relation = (">=" if gate.direction == "higher" else "<=") if passed else (
        "<" if gate.direction == "higher" else ">")
    verdict = "promoted to" if passed else "not promoted to"
    return Decision(passed, f"{gate.metric}={value:.4g} {relation} {gate.threshold:g}: "
                    f"{verdict} {gate.stage}", gate.stage)
