"""Edit card for our own mandates: the hosted capture, every mandate on the old card re-pointed, a past-due
invoice charged again at once, the expiry-only change, the record and the confirmation email."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from sqlalchemy import select

import timeutil
from automations.models import AutomationEvent
from billing.gateways import sandbox
from billing.models import Invoice, InvoiceStatus, Mandate, MandateStatus, PaymentAttempt, PaymentMethod, SandboxCard
from extensions import db
from keap.models import CardChange
from tests.billing.cardkit import (CARDS, T0, capture_card, member_by_email, share_one_card, sign_in, subscribe,
                                   text_values)
from tests.billing.helpers import emails, tick


@pytest.fixture
def clock(app_ctx):
    with timeutil.frozen(T0) as moment:
        yield moment


def _three_on_one_card_one_past_due(client, clock):
    """Three mandates on one Visa 4242; the first one's renewal declined, so it is past due."""
    mandates = subscribe(client, "ada@example.com", plans=3)
    old = share_one_card(mandates)
    for later in mandates[1:]:  # only the first renews in this test
        db.session.get(Mandate, later.id).current_period_end = T0 + timedelta(days=60)
    db.session.commit()
    sandbox.set_card_behaviour(db.session, old.token, "decline")
    db.session.commit()
    clock[0] = T0 + timedelta(days=31, hours=1)
    tick()
    first = db.session.get(Mandate, mandates[0].id)
    assert first.status == MandateStatus.PAST_DUE
    member = member_by_email("ada@example.com")
    sign_in(client, member.id)
    return member, [db.session.get(Mandate, m.id) for m in mandates], old


def test_a_new_card_reaches_all_three_mandates_and_the_past_due_invoice_is_paid(client, clock):
    member, mandates, old = _three_on_one_card_one_past_due(client, clock)
    page = client.get(f"/account/billing/cards/{old.id}").text
    assert "Visa ending 4242" in page and "Plan 1, Plan 2, Plan 3" in page

    back = capture_card(client, client.post(f"/account/billing/cards/{old.id}/replace"), card="success_mc")
    assert back.status_code == 302 and back.headers["Location"].endswith("/account/billing")
    db.session.expire_all()

    new = db.session.scalar(select(PaymentMethod).where(PaymentMethod.last4 == "4444"))
    assert (new.brand, new.exp_month, new.exp_year) == ("mastercard", 11, 2033)
    assert [db.session.get(Mandate, m.id).payment_method_id for m in mandates] == [new.id] * 3
    assert db.session.get(PaymentMethod, old.id).replaced_at is not None
    # The past-due invoice was charged again right away, with the new card, and paid.
    invoice = db.session.scalar(select(Invoice).where(Invoice.mandate_id == mandates[0].id)
                                .order_by(Invoice.id.desc()))
    assert invoice.status == InvoiceStatus.PAID
    assert db.session.get(Mandate, mandates[0].id).status == MandateStatus.ACTIVE
    last = db.session.scalar(select(PaymentAttempt).where(PaymentAttempt.invoice_id == invoice.id)
                             .order_by(PaymentAttempt.id.desc()))
    assert (last.outcome, last.initiated_by, last.payment_method_id) == ("succeeded", "customer", new.id)
    # Recorded, emailed, and the automation trigger fired once.
    change = db.session.scalar(select(CardChange))
    assert change.source == "own" and change.changed_by == "member"
    assert sorted(change.subscription_refs) == sorted(str(m.id) for m in mandates)
    assert (change.old_last4, change.new_last4) == ("4242", "4444")
    assert change.changed_at == clock[0]
    (mail,) = emails("card_updated")
    assert mail.recipient == "ada@example.com"
    assert "Mastercard ending 4444" in mail.text_body or "mastercard ending 4444" in mail.text_body
    assert all(f"Plan {n}" in mail.text_body for n in (1, 2, 3)) and "ending 4242" in mail.text_body
    event = db.session.scalar(select(AutomationEvent).where(AutomationEvent.trigger == "card_updated"))
    assert event.member_id == member.id and event.event_key == f"card_updated:own:{change.id}"
    html = client.get("/account/billing").text
    assert html.count("Mastercard ending 4444, expires 11/2033") == 3
    assert "now used for 3 subscription(s)" in html and "overdue payment went through" in html


def test_a_new_card_that_declines_leaves_the_invoice_past_due(client, clock):
    member, mandates, old = _three_on_one_card_one_past_due(client, clock)
    capture_card(client, client.post(f"/account/billing/cards/{old.id}/replace"), card="decline")
    db.session.expire_all()
    assert db.session.get(Mandate, mandates[0].id).status == MandateStatus.PAST_DUE
    assert "did not go through with the new card" in client.get("/account/billing").text


def test_only_the_old_cards_mandates_move_and_never_another_members(client, clock):
    ada = subscribe(client, "ada@example.com", plans=2)  # two cards, one mandate on each
    bob = subscribe(client, "bob@example.com", plans=1)
    member = member_by_email("ada@example.com")
    sign_in(client, member.id)
    assert client.get(f"/account/billing/cards/{bob[0].payment_method_id}").status_code == 404
    assert client.post(f"/account/billing/cards/{bob[0].payment_method_id}/replace").status_code == 404
    capture_card(client, client.post(f"/account/billing/cards/{ada[1].payment_method_id}/replace"),
                 card="success_mc")
    db.session.expire_all()
    assert db.session.get(Mandate, ada[0].id).payment_method_id == ada[0].payment_method_id
    assert db.session.get(Mandate, ada[1].id).payment_method.last4 == "4444"
    assert db.session.get(Mandate, bob[0].id).payment_method_id == bob[0].payment_method_id


def test_just_the_expiry_changes_where_the_gateway_allows_it(client, clock):
    (mandate,) = subscribe(client, "ada@example.com")
    sign_in(client, member_by_email("ada@example.com").id)
    method_id = mandate.payment_method_id
    assert "Only the expiry changed?" in client.get(f"/account/billing/cards/{method_id}").text
    refused = client.post(f"/account/billing/cards/{method_id}/expiry", data={"exp_month": 13, "exp_year": 2031})
    assert refused.status_code == 303
    assert "Enter an expiry month" in client.get(f"/account/billing/cards/{method_id}").text
    client.post(f"/account/billing/cards/{method_id}/expiry", data={"exp_month": 3, "exp_year": 2031}).close()
    db.session.expire_all()
    method = db.session.get(PaymentMethod, method_id)
    assert (method.exp_month, method.exp_year, method.last4) == (3, 2031, "4242")
    assert db.session.scalar(select(SandboxCard.exp_month).where(SandboxCard.token == method.token)) == 3
    change = db.session.scalar(select(CardChange))
    assert change.subscription_refs == [str(mandate.id)] and (change.new_exp_month, change.new_exp_year) == (3, 2031)
    assert "Visa ending 4242, expires 03/2031" in client.get("/account/billing").text
    assert len(emails("card_updated")) == 1


def test_card_pages_need_a_signed_in_member(client, app_ctx):
    assert client.get("/account/billing/cards/1").status_code == 401


def test_no_card_number_in_the_database_or_the_logs(client, clock, caplog):
    caplog.set_level(logging.DEBUG)
    member, mandates, old = _three_on_one_card_one_past_due(client, clock)
    capture_card(client, client.post(f"/account/billing/cards/{old.id}/replace"), card="success_mc")
    numbers = [CARDS[name] for name in ("success", "success_mc", "decline")]
    assert not [(table, value) for table, value in text_values() if any(n in value for n in numbers)]
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert not [n for n in numbers if n in logged]


def test_stripe_changes_only_the_expiry_through_its_payment_method_update(app_ctx, mocked_responses):
    from urllib.parse import parse_qs

    from billing.gateways.base import CardDetails
    from billing.gateways.stripe_gateway import StripeGateway

    mocked_responses.post("https://api.stripe.com/v1/payment_methods/pm_card_1", json={
        "id": "pm_card_1", "object": "payment_method", "type": "card",
        "card": {"brand": "visa", "last4": "4242", "exp_month": 4, "exp_year": 2032}})
    card = CardDetails(token="pm_card_1", brand="visa", last4="4242", exp_month=12, exp_year=2026,
                       customer_ref="cus_1")
    updated = StripeGateway("sk_test_not_a_real_key").update_expiry(db.session, card, 4, 2032)
    assert (updated.exp_month, updated.exp_year, updated.customer_ref) == (4, 2032, "cus_1")
    sent = {k: v[0] for k, v in parse_qs(mocked_responses.calls[0].request.body).items()}
    assert sent == {"card[exp_month]": "4", "card[exp_year]": "2032"}
