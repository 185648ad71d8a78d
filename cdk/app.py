"""The CDK app: ``npx cdk synth`` (cdk.json runs this with the project's virtualenv).

Settings come from cdk.json's ``mlops`` context, typed in ``mlops_cdk/settings.py``. cdk-nag's
AwsSolutions pack runs on every synth: an unacknowledged finding fails it.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent / "src")]

from aws_cdk import App, Validations  # noqa: E402
from cdk_nag import AwsSolutionsChecks  # noqa: E402
from mlops_cdk import settings as settings_mod  # noqa: E402
from mlops_cdk.stacks import build  # noqa: E402


def main() -> None:
    app = App()
    settings = settings_mod.from_context(app.node.try_get_context(settings_mod.CONTEXT_KEY),
                                         app.node.try_get_context("code_revision"))
    build(app, settings)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    app.synth()


if __name__ == "__main__":
    main()
