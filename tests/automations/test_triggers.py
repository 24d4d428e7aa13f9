"""fire(): every trigger, every action, filters, idempotency on replay, failures and the depth guard."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

import timeutil
from automations.models import AutomationEvent, AutomationRule, RunStatus
from automations.triggers import MAX_DEPTH, fire
from emails.models import OutboundEmail
from extensions import db
from membership.models import Grant, GrantStatus
from membership.tags import AppliedBy, MemberTag
from tests import factories
from tests.automations.helpers import make_rule, runs, tag_names
from tests.helpers import delivered_text
from membership import grants

ALL_TRIGGERS = ["order_completed", "line_refunded", "subscription_cancelled", "payment_failed", "payment_recovered",
                "grant_revoked", "tag_added", "tag_removed", "card_updated"]


@pytest.mark.parametrize("trigger", ALL_TRIGGERS)
def test_each_trigger_runs_its_rules_and_nothing_else(session, trigger):
    member = factories.make_member()
    level = factories.make_level()
    tag_filter = {"tag": "vip"} if trigger.startswith("tag_") else {}
    make_rule(trigger, [{"type": "add_tag", "tag": f"saw-{trigger.replace('_', '-')}"}], **tag_filter)
    other = "card_updated" if trigger != "card_updated" else "order_completed"
    make_rule(other, [{"type": "add_tag", "tag": "wrong-trigger"}])

    event = fire(session, trigger, member=member, event_key=f"test:{trigger}", level=level, product_id="12",
                 tag="vip" if trigger.startswith("tag_") else None)
    session.commit()

    assert event is not None
    assert f"saw-{trigger.replace('_', '-')}" in tag_names(member)
    assert "wrong-trigger" not in tag_names(member)


@pytest.mark.parametrize("trigger, expected", [
    ("order_completed", "purchased-12"), ("line_refunded", "refunded"), ("subscription_cancelled", "cancelled"),
    ("payment_failed", "payment-failed"), ("payment_recovered", "payment-recovered"),
    ("card_updated", "card-updated"),
])
def test_built_in_events_apply_their_tag(session, trigger, expected):
    member = factories.make_member()
    fire(session, trigger, member=member, event_key="webhook:1:line:product-12", product_id="12")
    session.commit()
    assert expected in tag_names(member)
    row = session.scalar(select(MemberTag).where(MemberTag.member_id == member.id))
    assert row.applied_by == AppliedBy.EVENT
    assert trigger in row.source


def test_event_tag_names_are_configurable_per_integration(session):
    from automations import tags

    member = factories.make_member()
    one = factories.make_integration()
    two = factories.make_integration()
    tags.set_tag_name_templates(session, one.id, {"purchased": "bought-{product_id}-via-{integration_id}",
                                                  "refunded": ""})
    fire(session, "order_completed", member=member, event_key="a", product_id="Prod_ABC", integration_id=one.id)
    fire(session, "line_refunded", member=member, event_key="b", product_id="Prod_ABC", integration_id=one.id)
    fire(session, "order_completed", member=member, event_key="c", product_id="7", integration_id=two.id)
    session.commit()
    assert tag_names(member) == ["bought-prod_abc-via-" + str(one.id), "purchased-7"]


def test_filters_on_level_product_and_tag(session):
    member = factories.make_member()
    gold, silver = factories.make_level(), factories.make_level()
    make_rule("order_completed", [{"type": "add_tag", "tag": "gold-buyer"}], level_id=gold.id)
    make_rule("order_completed", [{"type": "add_tag", "tag": "bought-12"}], product_id="12")
    make_rule("order_completed", [{"type": "add_tag", "tag": "vip-buyer"}], tag="vip")
    make_rule("tag_added", [{"type": "add_tag", "tag": "saw-vip"}], tag="vip")

    fire(session, "order_completed", member=member, event_key="o1", level=silver, product_id="13")
    assert tag_names(member) == ["purchased-13"]

    fire(session, "order_completed", member=member, event_key="o2", level=gold, product_id="12")
    assert set(tag_names(member)) == {"purchased-13", "purchased-12", "gold-buyer", "bought-12"}

    services_tag = __import__("membership.tags", fromlist=["tag_member"])
    services_tag.tag_member(session, member, "vip", applied_by=AppliedBy.OWNER, source="test", event_key="t1")
    assert "saw-vip" in tag_names(member)
    fire(session, "order_completed", member=member, event_key="o3", level=silver, product_id="14")
    assert "vip-buyer" in tag_names(member)


def test_replay_of_the_same_event_runs_nothing_twice(session):
    member = factories.make_member()
    level = factories.make_level()
    rule = make_rule("order_completed", [{"type": "grant_level", "level_id": level.id},
                                         {"type": "send_email", "template": "automation_message",
                                          "subject": "Thanks {member_name}", "body": "Enjoy {level}."}])
    first = fire(session, "order_completed", member=member, event_key="webhook:9:line:product-1", level=level)
    session.commit()
    again = fire(session, "order_completed", member=member, event_key="webhook:9:line:product-1", level=level)
    session.commit()

    assert first is not None and again is None
    assert len(runs(rule)) == 1
    assert session.scalar(select(db.func.count(Grant.id))) == 1
    assert session.scalar(select(db.func.count(OutboundEmail.id))) == 1


def test_run_is_unique_per_rule_and_event_key_in_the_database(session):
    from sqlalchemy.exc import IntegrityError

    from automations.models import AutomationRun

    member = factories.make_member()
    rule = make_rule("card_updated", [{"type": "add_tag", "tag": "x"}])
    fire(session, "card_updated", member=member, event_key="k")
    session.commit()
    event = session.scalar(select(AutomationEvent))
    session.add(AutomationRun(rule_id=rule.id, rule_name="dup", event_id=event.id, event_key="k",
                              trigger="card_updated", member_id=member.id, actions_taken=[]))
    with pytest.raises(IntegrityError):
        session.flush()
    session.rollback()


def test_runs_are_logged_with_the_actions_taken(session):
    member = factories.make_member()
    rule = make_rule("card_updated", [{"type": "add_tag", "tag": "a"}, {"type": "add_tag", "tag": "a"},
                                      {"type": "remove_tag", "tag": "b"}])
    fire(session, "card_updated", member=member, event_key="k1")
    session.commit()
    (run,) = runs(rule)
    assert run.status == RunStatus.SUCCEEDED
    assert run.event_key == "k1" and run.member_id == member.id and run.rule_name == rule.name
    assert [a["outcome"] for a in run.actions_taken] == ["added", "already_tagged", "not_tagged"]


def test_grant_level_for_n_days_and_revoke_level(session):
    member = factories.make_member()
    trial, paid = factories.make_level(), factories.make_level()
    make_rule("tag_added", [{"type": "grant_level", "level_id": trial.id, "days": 14}], tag="trial")
    revoke_rule = make_rule("tag_added", [{"type": "revoke_level", "level_id": trial.id}], tag="converted")
    watcher = make_rule("grant_revoked", [{"type": "add_tag", "tag": "lost-trial"}], level_id=trial.id)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    from membership import tags

    with timeutil.frozen(start):
        tags.tag_member(session, member, "trial", applied_by=AppliedBy.OWNER, source=None, event_key="e1")
        session.commit()
        grant = session.scalar(select(Grant).where(Grant.member_id == member.id))
        assert grant.level_id == trial.id and grant.source_kind == "automation"
        assert grant.ends_at == start + timedelta(days=14)
        grants.open_grant(session, member, paid)
        tags.tag_member(session, member, "converted", applied_by=AppliedBy.OWNER, source=None, event_key="e2")
        session.commit()
    assert grant.status == GrantStatus.REVOKED and grant.revoke_reason == f"automation rule #{revoke_rule.id}"
    assert [g.status for g in session.scalars(select(Grant).where(Grant.level_id == paid.id))] == ["active"]
    assert "lost-trial" in tag_names(member)
    assert runs(watcher)[0].status == RunStatus.SUCCEEDED


def test_remove_tag_fires_tag_removed(session):
    from membership import tags

    member = factories.make_member()
    make_rule("tag_added", [{"type": "remove_tag", "tag": "lead"}], tag="customer")
    make_rule("tag_removed", [{"type": "add_tag", "tag": "was-lead"}], tag="lead")
    tags.tag_member(session, member, "lead", applied_by=AppliedBy.IMPORT, source=None, event_key="e1")
    tags.tag_member(session, member, "customer", applied_by=AppliedBy.OWNER, source=None, event_key="e2")
    session.commit()
    assert tag_names(member) == ["customer", "was-lead"]


def test_send_email_renders_owner_placeholders_never_jinja(session, app):
    member = factories.make_member(name="Ada <script>")
    level = factories.make_level(name="Gold")
    make_rule("order_completed", [{"type": "send_email", "template": "automation_message",
                                   "subject": "Welcome to {level}, {member_name}",
                                   "body": "Hi {member_name},\n\n{{ config.SECRET_KEY }} stays literal.\n"
                                           "Log in: {login_url}"}])
    fire(session, "order_completed", member=member, event_key="o1", level=level)
    session.commit()
    email = session.scalar(select(OutboundEmail))
    assert email.template == "automation_message" and email.recipient == member.email
    assert email.subject == "Welcome to Gold, Ada <script>"
    assert "{ config.SECRET_KEY } stays literal." in email.text_body
    assert app.config["SECRET_KEY"] not in email.text_body + email.html_body
    # the owner's {login_url} is kept as a marker, and the delivered message carries a working link in its place
    assert "Log in: [link made when sent: login/" in email.text_body and "/login/" not in email.text_body
    assert "Log in: http://coursegate.test/login/" in delivered_text(email.id)
    assert "Ada &lt;script&gt;" in email.html_body and "<script>" not in email.html_body


def test_a_failing_action_rolls_back_its_rule_and_is_logged_without_failing_the_event(session):
    member = factories.make_member()
    level = factories.make_level()
    broken = make_rule("card_updated", [{"type": "add_tag", "tag": "first"},
                                        {"type": "grant_level", "level_id": level.id}])
    fine = make_rule("card_updated", [{"type": "add_tag", "tag": "second"}])
    session.execute(db.update(AutomationRule).where(AutomationRule.id == broken.id)
                    .values(actions=[{"type": "add_tag", "tag": "first"},
                                     {"type": "grant_level", "level_id": 999999}]))
    session.expire_all()
    event = fire(session, "card_updated", member=member, event_key="k")
    session.commit()
    assert event is not None
    assert set(tag_names(member)) == {"card-updated", "second"}  # "first" was rolled back with its rule
    (run,) = runs(broken)
    assert run.status == RunStatus.FAILED and "999999" in run.error
    assert run.actions_taken[0]["rolled_back"] is True and run.actions_taken[-1]["outcome"] == "error"
    assert runs(fine)[0].status == RunStatus.SUCCEEDED


def test_depth_limit_stops_a_loop_that_bypassed_validation(session):
    member = factories.make_member()
    # Written straight to the table: the API would reject this pair with automation_loop.
    session.add_all([
        AutomationRule(name="add", trigger="tag_removed", tag="flip", actions=[{"type": "add_tag", "tag": "flip"}]),
        AutomationRule(name="remove", trigger="tag_added", tag="flip",
                       actions=[{"type": "remove_tag", "tag": "flip"}]),
    ])
    session.flush()
    from membership import tags

    tags.tag_member(session, member, "flip", applied_by=AppliedBy.OWNER, source=None, event_key="start")
    session.commit()
    statuses = [run.status for run in runs()]
    assert RunStatus.DEPTH_LIMIT in statuses
    assert max(e.depth for e in session.scalars(select(AutomationEvent))) == MAX_DEPTH + 1
    assert len(statuses) <= MAX_DEPTH + 2


def test_unknown_trigger_is_a_programming_error(session):
    with pytest.raises(ValueError):
        fire(session, "order_shipped", member=factories.make_member(), event_key="x")


def test_fire_never_commits(session):
    member = factories.make_member()
    session.commit()
    make_rule("card_updated", [{"type": "add_tag", "tag": "x"}])
    fire(session, "card_updated", member=member, event_key="k")
    session.rollback()
    assert tag_names(member) == []
    assert session.scalar(select(db.func.count(AutomationEvent.id))) == 0


def test_level_may_be_given_by_id(session):
    member = factories.make_member()
    level = factories.make_level()
    make_rule("grant_revoked", [{"type": "add_tag", "tag": "lost-it"}], level_id=level.id)
    fire(session, "grant_revoked", member=member, event_key="g1", level=level.id)
    session.commit()
    assert tag_names(member) == ["lost-it"]


def test_a_tag_filter_sees_the_tag_the_event_itself_applies(session):
    member = factories.make_member()
    make_rule("order_completed", [{"type": "add_tag", "tag": "bought-12-first-time"}], tag="purchased-12")
    fire(session, "order_completed", member=member, event_key="o1", product_id="12")
    session.commit()
    assert "bought-12-first-time" in tag_names(member)
