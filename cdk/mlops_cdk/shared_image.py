"""The shared image (``training_image/Dockerfile``): ``train`` for SageMaker training jobs,
``serve`` for endpoints. Built and pushed by ``cdk deploy``; synth needs no Docker."""

from __future__ import annotations

from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_iam as iam
from constructs import Construct

from mlops_cdk.lambda_factory import REPO

# The build context is the repository (the image installs src/ and projects/); everything
# else stays out so unrelated changes do not rebuild the image.
EXCLUDE = [".git", ".venv", "node_modules", "cdk.out", "build", "state", "tests", "cdk",
           "lambdas", "docs", ".github", "**/__pycache__", "**/*.pyc", "mlruns", "mlartifacts",
           ".mypy_cache", ".ruff_cache", ".pytest_cache", "benchmarks"]


class SharedImage(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, code_revision: str) -> None:
        super().__init__(scope, construct_id)
        self.asset = ecr_assets.DockerImageAsset(
            self, "Image", directory=str(REPO), file="training_image/Dockerfile",
            exclude=EXCLUDE, platform=ecr_assets.Platform.LINUX_AMD64,
            build_args={"CODE_REVISION": code_revision})
        self.image_uri = self.asset.image_uri

    def grant_pull(self, grantee: iam.IGrantable) -> None:
        self.asset.repository.grant_pull(grantee)
