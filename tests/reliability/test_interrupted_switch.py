"""A control centre that dies between switching an endpoint and writing the tags leaves the
registry behind the endpoint. The reconciler must finish the bookkeeping, not read the old
version's leftover tags as a request to roll back: the people asked for the new version."""

from __future__ import annotations

from mlops_control import names
from mlops_control.registry import ModelVersion
from mlops_control.steps import apply, plan
from tests.fakes import FakeRegistry

STAGES = frozenset({"staging", "production"})
ENDPOINT = names.endpoint_name("p", "production")


def mv(version: int, **tags: str) -> ModelVersion:
    return ModelVersion(name="p", version=str(version), tags=dict(tags), run_id=None,
                        source="", status="READY", creation_timestamp=0)


def at(version: int, status: str, deploy: str | None = "production", **tags: str
       ) -> ModelVersion:
    base = {names.TAG_STATUS: status, names.TAG_ENDPOINT: ENDPOINT,
            names.TAG_UPDATED_AT: "2026-11-01T00:00:00+00:00", **tags}
    if deploy:
        base[names.TAG_DEPLOY] = deploy
    return mv(version, **base)


def view(*versions: ModelVersion, live: dict[str, str]) -> plan.ProjectView:
    return plan.ProjectView(project="p", versions={v.version: v for v in versions}, live=live,
                            stages=STAGES)


def test_killed_after_the_switch_before_any_tag_then_the_new_version_is_confirmed():
    # v2 was being deployed (status deploying), the endpoint already serves it, and v1 still
    # says in_service with its deploy tag: succeed() never ran.
    actions = plan.plan(view(at(1, "in_service"), at(2, "deploying"), live={"production": "2"}))
    assert actions == [plan.Repair("production", "2", ("1",))]


def test_killed_half_way_through_the_tags_then_the_old_version_is_marked_superseded():
    # succeed() wrote v2 in_service, then died before clearing v1's deploy tag.
    actions = plan.plan(view(at(1, "in_service"), at(2, "in_service"), live={"production": "2"}))
    assert actions == [plan.Repair("production", "2", ("1",))]


def test_a_real_rollback_request_is_still_a_rollback():
    # v1 was superseded earlier; a person tags it deploy=production again.
    actions = plan.plan(view(at(1, "superseded"), at(2, "in_service"), live={"production": "2"}))
    assert [(type(a).__name__, a.version) for a in actions] == [("Deploy", "1")]


def test_the_repair_clears_the_leftover_deploy_tag_so_the_next_pass_does_nothing():
    registry = FakeRegistry()
    registry.add("p", "1", **{k: v for k, v in at(1, "in_service").tags.items()})
    registry.add("p", "2", **{k: v for k, v in at(2, "deploying").tags.items()})
    (action,) = plan.plan(view(*registry.model_versions("p"), live={"production": "2"}))
    apply.execute(registry, None, "p", action)  # type: ignore[arg-type]
    v1, v2 = registry.tags("p", "1"), registry.tags("p", "2")
    assert names.TAG_DEPLOY not in v1 and v1[names.TAG_STATUS] == "superseded"
    assert v2[names.TAG_DEPLOY] == "production" and v2[names.TAG_STATUS] == "in_service"
    assert plan.plan(view(*registry.model_versions("p"), live={"production": "2"})) == []


def test_an_interrupted_rollback_leaves_the_newer_version_rolled_back():
    registry = FakeRegistry()
    registry.add("p", "3", **{k: v for k, v in at(3, "in_service").tags.items()})
    registry.add("p", "2", **{k: v for k, v in at(2, "deploying").tags.items()})
    (action,) = plan.plan(view(*registry.model_versions("p"), live={"production": "2"}))
    apply.execute(registry, None, "p", action)  # type: ignore[arg-type]
    assert registry.tags("p", "3")[names.TAG_STATUS] == "rolled_back"
    assert names.TAG_DEPLOY not in registry.tags("p", "3")
