"""One synth of the whole CDK app per test session (jsii start-up costs seconds), with the
cdk-nag AwsSolutions pack on exactly as ``make synth`` runs it."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "cdk")]
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


@dataclass
class Synth:
    outdir: Path
    templates: dict[str, dict[str, Any]]
    control: Any  # aws_cdk.assertions.Template
    mlflow: Any


def cdk_context() -> dict[str, Any]:
    return json.loads((REPO / "cdk.json").read_text())["context"]


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    import bundle_lambda
    from aws_cdk import App, Validations
    from aws_cdk.assertions import Template
    from cdk_nag import AwsSolutionsChecks
    from mlops_cdk import settings as settings_mod
    from mlops_cdk.stacks import build

    bundle_lambda.build()
    outdir = tmp_path_factory.mktemp("cdk.out")
    context = cdk_context()
    app = App(outdir=str(outdir), context=context)
    control = build(app, settings_mod.from_context(context["mlops"]))
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()  # an unacknowledged cdk-nag finding raises here
    mlflow = app.node.find_child("MlopsMlflow")
    templates = {p.name.removesuffix(".template.json"): json.loads(p.read_text())
                 for p in outdir.glob("*.template.json")}
    return Synth(outdir=outdir, templates=templates,
                 control=Template.from_stack(control), mlflow=Template.from_stack(mlflow))
