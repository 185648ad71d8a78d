"""The reconciler's rules, on registry states a user would create by tagging."""

from __future__ import annotations

from mlops_control import names
from mlops_control.registry import ModelVersion
from mlops_control.steps import plan

STAGES = frozenset({"staging", "production"})


def mv(version: int, **tags: str) -> ModelVersion:
    return ModelVersion(name="p", version=str(version), tags=dict(tags), run_id=None,
                        source="", status="READY", creation_timestamp=0)


def view(*versions: ModelVersion, live: dict[str, str] | None = None) -> plan.ProjectView:
    return plan.ProjectView(project="p", versions={v.version: v for v in versions},
                            live=live or {}, stages=STAGES)


def served(version: int, status: str, stage: str = "production", at: str = "", **tags: str):
    return mv(version, **{names.TAG_STATUS: status,
                          names.TAG_ENDPOINT: names.endpoint_name("p", stage),
                          names.TAG_UPDATED_AT: at or "2026-11-01T00:00:00+00:00"}, **tags)


def test_given_a_version_tagged_for_production_when_nothing_serves_then_it_is_deployed():
    actions = plan.plan(view(mv(1, deploy="production")))
    assert actions == [plan.Deploy("production", "1", None,
                                   "deploy to version 1 (tagged deploy=production)")]


def test_given_a_newer_version_tagged_when_the_old_one_serves_then_the_new_one_replaces_it():
    actions = plan.plan(view(served(1, "in_service", deploy="production"),
                             mv(2, deploy="production"), live={"production": "1"}))
    assert [(type(a).__name__, a.version) for a in actions] == [("Deploy", "2")]
    assert actions[0].replaces == "1"


def test_given_an_older_version_tagged_then_it_is_a_rollback():
    actions = plan.plan(view(served(1, "superseded"), served(2, "in_service", deploy="production"),
                             mv(1, deploy="production"), live={"production": "2"}))
    (deploy,) = actions
    assert isinstance(deploy, plan.Deploy) and deploy.version == "1"
    assert deploy.reason.startswith("roll back to version 1")


def test_given_the_live_version_is_deprecated_then_it_rolls_back_to_the_last_good_one():
    v1 = served(1, "superseded", at="2026-11-01T00:00:00+00:00")
    v2 = served(2, "superseded", at="2026-11-02T00:00:00+00:00")
    v3 = served(3, "in_service", deploy="production", deprecated="true")
    (action,) = plan.plan(view(v1, v2, v3, live={"production": "3"}))
    assert isinstance(action, plan.Deploy)
    assert (action.version, action.replaces, action.rollback_of_deprecated) == ("2", "3", True)


def test_given_the_live_version_is_deprecated_and_none_served_before_then_the_endpoint_goes():
    (action,) = plan.plan(view(served(1, "in_service", deploy="production", deprecated="true"),
                               live={"production": "1"}))
    assert isinstance(action, plan.Retire) and action.version == "1"


def test_given_a_deprecated_version_is_tagged_then_the_request_is_refused():
    (action,) = plan.plan(view(mv(4, deploy="production", deprecated="True")))
    assert isinstance(action, plan.Refuse) and "deprecated" in action.reason


def test_given_an_unknown_stage_then_the_request_is_refused_naming_the_known_ones():
    (action,) = plan.plan(view(mv(1, deploy="prod")))
    assert isinstance(action, plan.Refuse)
    assert "unknown stage 'prod'" in action.reason and "production" in action.reason


def test_given_no_version_wants_a_stage_that_serves_then_its_endpoint_is_removed():
    (action,) = plan.plan(view(served(1, "in_service"), live={"production": "1"}))
    assert isinstance(action, plan.Retire)


def test_given_the_registry_matches_what_serves_then_nothing_happens():
    assert plan.plan(view(served(1, "in_service", deploy="production"),
                          live={"production": "1"})) == []


def test_given_tags_lag_behind_the_endpoint_then_they_are_repaired():
    v1 = served(1, "in_service")
    v2 = served(2, "deploying", deploy="production")
    (action,) = plan.plan(view(v1, v2, live={"production": "2"}))
    assert action == plan.Repair("production", "2", ("1",))


def test_given_two_versions_requested_at_once_then_the_highest_wins_and_the_other_is_told():
    actions = plan.plan(view(mv(2, deploy="production"), mv(3, deploy="production")))
    assert [type(a).__name__ for a in actions] == ["Refuse", "Deploy"]
    assert actions[0].version == "2" and actions[1].version == "3"


def test_given_a_stage_in_progress_then_it_is_left_alone():
    v = plan.ProjectView(project="p", versions={"1": mv(1, deploy="production")}, live={},
                         stages=STAGES, in_progress=frozenset({"production"}))
    assert plan.plan(v) == []


def test_given_a_version_moves_from_staging_to_production_then_staging_is_retired_after():
    actions = plan.plan(view(served(2, "in_service", stage="staging", deploy="production"),
                             live={"staging": "2"}))
    assert [(type(a).__name__, a.stage) for a in actions] == [("Deploy", "production"),
                                                              ("Retire", "staging")]


def aliased(version: int, *aliases: str, **tags: str) -> ModelVersion:
    return ModelVersion(name="p", version=str(version), tags=dict(tags), run_id=None,
                        source="", status="READY", creation_timestamp=0, aliases=aliases)


def test_given_a_refusal_on_another_stage_overwrote_the_status_then_the_rollback_still_finds_it():
    # v2 served staging until v3 replaced it; then deploy=prod on v2 was refused, which wrote
    # failed/p-prod into v2's general status tags. Its staging record is intact.
    v2 = mv(2, **{names.TAG_STATUS: "failed", names.TAG_ENDPOINT: "p-prod",
                  names.stage_status_tag("staging"): "superseded",
                  names.stage_updated_at_tag("staging"): "2026-11-02T00:00:00+00:00"})
    v3 = served(3, "in_service", stage="staging", deploy="staging", deprecated="true")
    (action,) = plan.plan(view(v2, v3, live={"staging": "3"}))
    assert isinstance(action, plan.Deploy)
    assert (action.version, action.rollback_of_deprecated) == ("2", True)


def test_given_a_version_only_refused_for_a_stage_then_it_is_no_rollback_target():
    # Never tried (another version won): its general tags say superseded, its stage record
    # says refused, and the endpoint must not roll back to a version that never served.
    v1 = served(1, "superseded", stage="staging",
                **{names.stage_status_tag("staging"): names.STAGE_REFUSED})
    v2 = served(2, "in_service", stage="staging", deploy="staging", deprecated="true")
    (action,) = plan.plan(view(v1, v2, live={"staging": "2"}))
    assert isinstance(action, plan.Retire)


def test_given_two_versions_tagged_while_nothing_ran_then_the_newest_wins_and_the_other_is_superseded():
    actions = plan.plan(view(mv(2, deploy="staging"), mv(3, deploy="staging")))
    refuse, deploy = actions
    assert isinstance(refuse, plan.Refuse) and isinstance(deploy, plan.Deploy)
    assert (refuse.version, refuse.status, deploy.version) == ("2", "superseded", "3")
    assert "version 3 was requested for staging too" in refuse.reason
    assert "the newest version wins" in refuse.reason
    assert refuse.reason.endswith("To serve version 2 on staging instead, tag it "
                                  "deploy=staging again: it then replaces version 3")


def test_given_a_superseded_version_tagged_again_then_it_replaces_the_winner():
    # What the superseded message tells a person to do, once the winner serves.
    actions = plan.plan(view(served(2, "superseded", stage="staging", deploy="staging"),
                             served(3, "in_service", stage="staging", deploy="staging"),
                             live={"staging": "3"}))
    assert actions == [plan.Deploy("staging", "2", "3",
                                   "roll back to version 2 (tagged deploy=staging)")]


def test_given_an_alias_named_like_a_stage_then_its_version_is_deployed_there():
    (action,) = plan.plan(view(aliased(1), aliased(2, "staging")))
    assert action == plan.Deploy("staging", "2", None, "deploy to version 2 (aliased @staging)")


def test_given_the_champion_alias_then_production_serves_its_version():
    (action,) = plan.plan(view(aliased(1, "champion"), aliased(2, "not-a-stage")))
    assert (type(action), action.stage, action.version) == (plan.Deploy, "production", "1")


def test_given_an_alias_moved_to_another_version_then_the_endpoint_switches():
    v1 = served(1, "in_service", stage="staging")
    (action,) = plan.plan(view(v1, aliased(2, "staging"), live={"staging": "1"}))
    assert isinstance(action, plan.Deploy) and (action.version, action.replaces) == ("2", "1")


def test_given_the_alias_deleted_then_the_stage_is_retired():
    (action,) = plan.plan(view(served(1, "in_service", stage="staging"), live={"staging": "1"}))
    assert isinstance(action, plan.Retire) and "holds an alias" in action.reason


def test_given_a_deploy_tag_and_the_stage_alias_on_different_versions_then_the_tag_is_refused():
    actions = plan.plan(view(mv(2, deploy="staging"), aliased(3, "staging")))
    refuse, deploy = actions
    assert isinstance(refuse, plan.Refuse) and refuse.version == "2" and refuse.alias is None
    assert "staging follows the alias @staging, which names version 3" in refuse.reason
    assert isinstance(deploy, plan.Deploy) and deploy.version == "3"


def test_given_the_alias_on_a_deprecated_version_then_the_alias_is_refused():
    (action,) = plan.plan(view(aliased(4, "staging", deprecated="true")))
    assert isinstance(action, plan.Refuse)
    assert (action.alias, action.request) == ("staging", "@staging")
