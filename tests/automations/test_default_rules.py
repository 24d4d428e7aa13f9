"""The shipped failed-payment rule set, end to end with time travel: tag, card-link email, revoke after the
grace days, and tag removed with access restored when the payment recovers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

import timeutil
from automations import rules
from automations.models import AutomationRule
from automations.triggers import fire
from emails.models import OutboundEmail
from extensions import db
from membership import services
from membership.models import Grant, GrantSourceKind, GrantStatus
from tests import factories
from tests.automations.helpers import runs, tag_names
from membership import grants

T0 = datetime(2027, 5, 1, 9, 0, tzinfo=UTC)


def _subscriber(session):
    course = factories.make_course(slug="pro-course")
    level = factories.make_level(name="Pro", courses=[course])
    integration = factories.make_integration(grace_days=5, card_update_url="https://cart.example/hub")
    member = factories.make_member(email="sub@example.com", name="Sam")
    grant = grants.open_grant(session, member, level, source_kind=GrantSourceKind.ORDER,
                                 integration_id=integration.id, order_ref="o-1", line_ref="product-1",
                                 subscription_ref="sub-1")
    session.commit()
    return member, grant, integration


def _payment_failed(session, member, grant, integration, key="webhook:10"):
    # What fulfillment does on a failed rebill: the grant goes past due (access kept), then the trigger fires.
    grant.status = GrantStatus.PAST_DUE
    grant.past_due_since = timeutil.now()
    fire(session, "payment_failed", member=member, event_key=key, integration_id=integration.id,
         level=grant.level, context={"grant_ids": [grant.id], "subscription_id": "sub-1"})
    session.commit()


def _has_access(session):
    return services.check_access(session, "sub@example.com", "pro-course")[0]


def test_failed_payment_then_grace_runs_out_then_payment_recovers(session):
    member, grant, integration = _subscriber(session)
    with timeutil.frozen(T0) as clock:
        _payment_failed(session, member, grant, integration)

        assert "payment-failed" in tag_names(member)
        email = session.scalar(select(OutboundEmail).where(OutboundEmail.template == "payment_failed"))
        assert email.recipient == "sub@example.com" and email.status == "sent", email.last_error
        assert "https://cart.example/hub" in email.text_body and "5 more day(s)" in email.text_body
        assert grant.revoke_at == T0 + timedelta(days=5) and grant.scheduled_revoke_reason == "payment_failed"
        assert _has_access(session)

        clock[0] = T0 + timedelta(days=4, hours=23)
        assert grants.run_due_revocations(session) == 0
        session.commit()
        assert _has_access(session)

        clock[0] = T0 + timedelta(days=5, minutes=1)
        assert grants.run_due_revocations(session) == 1
        session.commit()
        session.refresh(grant)
        assert grant.status == GrantStatus.REVOKED and grant.revoke_reason == "payment_failed"
        assert not _has_access(session)
        assert grants.run_due_revocations(session) == 0

        clock[0] = T0 + timedelta(days=6)
        fire(session, "payment_recovered", member=member, event_key="webhook:11", integration_id=integration.id,
             context={"subscription_id": "sub-1"})
        session.commit()
        session.refresh(grant)
        assert grant.status == GrantStatus.ACTIVE and grant.revoked_at is None and grant.revoke_at is None
        assert _has_access(session)
        assert "payment-failed" not in tag_names(member)
        assert "payment-recovered" in tag_names(member)


def test_payment_recovered_within_the_grace_period_cancels_the_revocation(session):
    member, grant, integration = _subscriber(session)
    with timeutil.frozen(T0) as clock:
        _payment_failed(session, member, grant, integration)
        clock[0] = T0 + timedelta(days=2)
        fire(session, "payment_recovered", member=member, event_key="webhook:12", integration_id=integration.id,
             context={"grant_ids": [grant.id]})
        session.commit()
        assert grant.status == GrantStatus.ACTIVE and grant.revoke_at is None and grant.past_due_since is None
        assert tag_names(member) == ["payment-recovered"]

        clock[0] = T0 + timedelta(days=30)
        assert grants.run_due_revocations(session) == 0
        session.commit()
        assert _has_access(session)


def test_a_replayed_failed_payment_sends_one_email_and_keeps_the_first_deadline(session):
    member, grant, integration = _subscriber(session)
    with timeutil.frozen(T0) as clock:
        _payment_failed(session, member, grant, integration)
        clock[0] = T0 + timedelta(days=3)
        _payment_failed(session, member, grant, integration)
    assert session.scalar(select(db.func.count(OutboundEmail.id))) == 1
    assert grant.revoke_at == T0 + timedelta(days=5)
    default = session.scalar(select(AutomationRule).where(AutomationRule.default_key == "payment_failed"))
    assert len(runs(default)) == 1


def test_grace_days_come_from_the_event_when_given(session):
    member, grant, _ = _subscriber(session)
    with timeutil.frozen(T0):
        grant.status = GrantStatus.PAST_DUE
        fire(session, "payment_failed", member=member, event_key="billing:1", context={"grace_days": 2})
        session.commit()
    assert grant.revoke_at == T0 + timedelta(days=2)


def test_the_owner_can_edit_the_default_rules(session):
    member, grant, integration = _subscriber(session)
    rules.install_defaults(session)
    rule = session.scalar(select(AutomationRule).where(AutomationRule.default_key == "payment_failed"))
    rules.update_rule(session, rule, {"actions": [{"type": "add_tag", "tag": "dunning"}]})
    session.commit()
    with timeutil.frozen(T0):
        _payment_failed(session, member, grant, integration)
    assert set(tag_names(member)) == {"payment-failed", "dunning"}  # the built-in event tag stays
    assert session.scalar(select(db.func.count(OutboundEmail.id))) == 0
    assert grant.revoke_at is None


def test_install_defaults_is_idempotent_and_a_deleted_default_stays_deleted_on_first_use(app, runner):
    first = runner.invoke(args=["automations", "install-defaults"])
    assert first.exit_code == 0 and "2 default rule(s) created" in first.output
    again = runner.invoke(args=["automations", "install-defaults"])
    assert "0 default rule(s) created" in again.output
    with app.app_context():
        rule = db.session.scalar(select(AutomationRule).where(AutomationRule.default_key == "payment_recovered"))
        rules.delete_rule(db.session, rule)
        db.session.commit()
        rules.ensure_defaults(db.session)  # first use is over: the owner's deletion stands
        keys = set(db.session.scalars(select(AutomationRule.default_key)))
        assert keys == {"payment_failed"}
    restored = runner.invoke(args=["automations", "install-defaults"])
    assert "1 default rule(s) created" in restored.output


def test_defaults_appear_on_first_use(session):
    member = factories.make_member()
    fire(session, "card_updated", member=member, event_key="k")
    session.commit()
    keys = set(session.scalars(select(AutomationRule.default_key)))
    assert keys == {"payment_failed", "payment_recovered"}


def test_run_due_cli_revokes_scheduled_grants(app, runner):
    with app.app_context():
        member = factories.make_member()
        level = factories.make_level()
        grant = grants.open_grant(db.session, member, level)
        grant.revoke_at = timeutil.now() - timedelta(minutes=1)
        grant.scheduled_revoke_reason = "cancelled"
        db.session.commit()
        grant_id = grant.id
    result = runner.invoke(args=["automations", "run-due"])
    assert "Revoked 1 grant(s)" in result.output
    with app.app_context():
        grant = db.session.get(Grant, grant_id)
        assert grant.status == "revoked" and grant.revoke_reason == "cancelled"


def test_a_cancellation_already_scheduled_is_not_replaced_by_the_grace_period(session):
    member, grant, integration = _subscriber(session)
    period_end = T0 + timedelta(days=20)
    grant.revoke_at = period_end
    grant.scheduled_revoke_reason = "subscription_cancelled"
    session.commit()
    with timeutil.frozen(T0) as clock:
        _payment_failed(session, member, grant, integration)
        assert grant.revoke_at == period_end and grant.scheduled_revoke_reason == "subscription_cancelled"
        clock[0] = T0 + timedelta(days=2)
        fire(session, "payment_recovered", member=member, event_key="webhook:13", integration_id=integration.id,
             context={"grant_ids": [grant.id]})
        session.commit()
        assert grant.status == GrantStatus.ACTIVE
        assert grant.revoke_at == period_end  # the cancellation still happens at the end of the period
