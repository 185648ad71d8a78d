"""The scheduled reconciler: every registered model that can be a project, converged to what
the registry says, one broken project never stopping the others. (Its executions running to
the end are in tests/infrastructure/test_state_machines.py.)"""

from __future__ import annotations

from lambdas import reconciler
from mlops_control.errors import RegistryError
from tests import events as recorded


def test_a_tagged_version_with_no_endpoint_starts_one_deploy(aws, context):
    aws.registry.add("test-project", "1", deploy="production")

    report = reconciler.handler(recorded.load("eventbridge_schedule"), context)

    assert report == {"test-project": [
        {"action": "deploy", "stage": "production", "version": "1", "result": "started"}]}
    [execution] = aws.executions(aws.deploy_arn)
    assert execution["input"]["version"] == "1"
    assert execution["name"].startswith("test-project-production-1-")


def test_a_retried_invocation_of_the_same_tick_starts_nothing_twice(aws, context):
    aws.registry.add("test-project", "1", deploy="production")
    reconciler.handler(recorded.load("eventbridge_schedule"), context)

    again = reconciler.handler(recorded.load("eventbridge_schedule"), context)

    # The first execution still runs (moto leaves it RUNNING): the stage is busy.
    assert again == {"test-project": []}
    assert len(aws.executions(aws.deploy_arn)) == 1


def test_one_broken_project_is_reported_and_the_others_still_converge(aws, context,
                                                                      monkeypatch):
    aws.registry.add("test-project", "1", deploy="production")
    aws.registry.add("other-project", "1", deploy="staging")
    healthy = aws.registry.model_versions

    def flaky(name):
        if name == "other-project":
            raise RegistryError("MLflow refused GET model-versions/search: boom", 500)
        return healthy(name)

    monkeypatch.setattr(aws.registry, "model_versions", flaky)

    report = reconciler.handler(recorded.load("eventbridge_schedule"), context)

    assert report["other-project"] == {"error": "MLflow refused GET model-versions/search: boom"}
    assert report["test-project"][0]["result"] == "started"


def test_registered_models_that_cannot_be_project_names_are_left_alone(aws, context):
    aws.registry.add("Fraud Model (old)", "1", deploy="production")

    assert reconciler.handler(recorded.load("eventbridge_schedule"), context) == {}
    assert aws.executions(aws.deploy_arn) == []


def test_two_versions_tagged_for_one_stage_deploy_the_newest_and_supersede_the_other(
        aws, context):
    aws.registry.add("test-project", "2", deploy="staging")
    aws.registry.add("test-project", "3", deploy="staging")

    report = reconciler.handler(recorded.load("eventbridge_schedule"), context)

    assert report == {"test-project": [
        {"action": "refuse", "stage": "staging", "version": "2", "result": "refused"},
        {"action": "deploy", "stage": "staging", "version": "3", "result": "started"}]}
    tags = aws.registry.tags("test-project", "2")
    assert tags["deployment.status"] == "superseded" and "deploy" not in tags
    assert "version 3 was requested for staging too" in tags["deployment.message"]
    assert tags["deployment.staging.status"] == "refused"


def test_the_reconciler_sees_aliases(aws, context):
    aws.registry.add("test-project", "1")
    aws.registry.set_alias("test-project", "staging", "1")

    report = reconciler.handler(recorded.load("eventbridge_schedule"), context)

    assert report == {"test-project": [
        {"action": "deploy", "stage": "staging", "version": "1", "result": "started"}]}
