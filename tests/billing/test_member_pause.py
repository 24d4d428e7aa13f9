"""A member pauses their own subscription where the plan allows it, and resumes it: billing moves back by the
days paused, access follows the plan, and automations and outgoing webhooks hear of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

import timeutil
from automations.models import AutomationEvent, WebhookDelivery
from billing.models import Plan
from extensions import db
from tests.billing.helpers import grant_of, invoices_of, make_plan, sign_up, tick
from tests.helpers import sign_in_as

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
RENEWAL = datetime(2026, 2, 10, 12, 0, tzinfo=UTC)
EMAIL = "ada@example.com"


@pytest.fixture
def clock(app_ctx):
    with timeutil.frozen(T0) as moment:
        yield moment


def pausable(max_days: int | None = 30, access: bool = False) -> Plan:
    plan = make_plan()
    plan.max_pause_days, plan.access_during_pause = max_days, access
    db.session.commit()
    return plan


def events(trigger: str) -> list[AutomationEvent]:
    return list(db.session.scalars(select(AutomationEvent).where(AutomationEvent.trigger == trigger)))


def test_a_plan_without_pauses_offers_none(client, clock, app):
    mandate = sign_up(client, pausable(None).id, EMAIL)
    sign_in_as(app, client, mandate.member_id)
    assert "Pause for" not in client.get("/account/billing").get_data(as_text=True)
    refused = client.post(f"/api/v1/me/subscriptions/{mandate.id}/pause", json={"days": 5})
    assert refused.status_code == 409 and refused.json["code"] == "pause_not_allowed"
    assert client.post(f"/api/v1/me/subscriptions/{mandate.id}/resume").json["code"] == "subscription_not_paused"


def test_pausing_on_the_billing_page_holds_access_and_billing_until_it_runs_out(client, clock, app, api):
    api.post("/api/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/hook",
                                                "events": ["subscription_paused", "subscription_resumed"]})
    mandate = sign_up(client, pausable(30).id, EMAIL)
    sign_in_as(app, client, mandate.member_id)
    page = client.get("/account/billing").get_data(as_text=True)
    assert "Pause for (days, up to 30)" in page and "Your access waits until you resume" in page

    too_long = client.post(f"/account/billing/subscriptions/{mandate.id}/pause", data={"days": "31"})
    assert too_long.status_code == 303
    assert "Pause for 1 to 30 days." in client.get("/account/billing").get_data(as_text=True)
    done = client.post(f"/account/billing/subscriptions/{mandate.id}/pause", data={"days": "10"},
                       follow_redirects=True).get_data(as_text=True)
    assert "is paused until 20 January 2026" in done and "Resume now" in done and "(paused until 2026-01-20)" in done

    db.session.expire_all()
    grant = grant_of(mandate)
    assert grant.status == "paused" and not grant.gives_access(T0 + timedelta(days=1))
    assert grant.ends_at == RENEWAL + timedelta(days=10)  # the paid days are kept for after the pause
    assert [e.context["pause_until"] for e in events("subscription_paused")] == ["2026-01-20T12:00:00+00:00"]
    assert [d.event_type for d in db.session.scalars(select(WebhookDelivery))] == ["subscription_paused"]
    assert client.get("/api/v1/me/subscriptions").json["subscriptions"][0]["status"] == "paused"

    clock[0] = RENEWAL - timedelta(hours=48)
    assert tick().issued == 0  # the renewal moved back by the pause
    clock[0] = T0 + timedelta(days=10)
    tick()  # the pause ran out: resumed by the tick
    grant = grant_of(mandate)
    assert grant.status == "active" and grant.gives_access(clock[0])
    assert len(events("subscription_resumed")) == 1
    clock[0] = RENEWAL + timedelta(days=10) - timedelta(hours=48)
    assert tick().issued == 1
    assert invoices_of(mandate)[-1].period_start == RENEWAL + timedelta(days=10)


def test_resuming_early_through_the_api_gives_the_unused_days_back(client, clock, app):
    mandate = sign_up(client, pausable(30, access=True).id, EMAIL)
    sign_in_as(app, client, mandate.member_id)
    clock[0] = RENEWAL - timedelta(hours=24)
    tick()  # the next period's invoice is out already
    [_, upcoming] = invoices_of(mandate)
    paused = client.post(f"/api/v1/me/subscriptions/{mandate.id}/pause", json={"days": 20})
    assert paused.status_code == 200, paused.json
    assert paused.json["status"] == "paused" and paused.json["paused_until"] == "2026-03-01"
    assert paused.json["max_pause_days"] is None  # cannot pause twice
    db.session.expire_all()
    assert invoices_of(mandate)[1].status == "void" and invoices_of(mandate)[1].id == upcoming.id
    assert grant_of(mandate).gives_access(RENEWAL + timedelta(days=5))  # this plan keeps access while paused
    again = client.post(f"/api/v1/me/subscriptions/{mandate.id}/pause", json={"days": 5})
    assert again.status_code == 409 and again.json["code"] == "pause_not_allowed"
    assert client.post(f"/api/v1/me/subscriptions/{mandate.id}/pause", json={"days": "x"}).status_code == 422

    clock[0] = RENEWAL + timedelta(days=4)  # five days into the pause
    resumed = client.post(f"/api/v1/me/subscriptions/{mandate.id}/resume")
    assert resumed.status_code == 200 and resumed.json["status"] == "active"
    assert resumed.json["renews_on"] == "2026-02-15"  # 15 unused days given back
    assert events("subscription_resumed")[0].context["early"] is True


def test_another_members_subscription_cannot_be_paused(client, clock, app):
    mandate = sign_up(client, pausable(30).id, EMAIL)
    other = sign_up(client, pausable(30).id, "bob@example.com")
    sign_in_as(app, client, other.member_id)
    assert client.post(f"/api/v1/me/subscriptions/{mandate.id}/pause", json={"days": 5}).status_code == 404
    assert client.post(f"/account/billing/subscriptions/{mandate.id}/pause", data={"days": "5"}).status_code == 404
    anonymous = app.test_client()
    assert anonymous.post(f"/api/v1/me/subscriptions/{mandate.id}/pause", json={"days": 5}).status_code == 401


def test_a_cancellation_with_access_to_the_period_end_is_cancel_scheduled(client, clock, app):
    mandate = sign_up(client, pausable(None).id, EMAIL)
    sign_in_as(app, client, mandate.member_id)
    client.post(f"/subscriptions/{mandate.id}/cancel")
    [event] = events("cancel_scheduled")
    assert event.context["access_until"] == RENEWAL.isoformat() and event.member_id == mandate.member_id
