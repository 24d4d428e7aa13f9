"""Time-travel tests: mandates walked through every path, asserting states, emails and grants at each step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

import timeutil
from billing.models import PaymentAttempt, SandboxPayment
from extensions import db
from membership.models import Member
from tests.billing.helpers import (emails, grant_of, invoices_of, link_in, make_plan, path_of, set_card, sign_up,
                                   templates_sent, tick)

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
RENEWAL = datetime(2026, 2, 10, 12, 0, tzinfo=UTC)  # one month after T0: the second period starts (and is due)
THIRD = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
EMAIL = "ada@example.com"


@pytest.fixture
def clock(app_ctx):
    with timeutil.frozen(T0) as moment:
        yield moment


@pytest.fixture
def plan(clock):
    return make_plan()


def renew_until_due(clock, mandate):
    """Travel to 48 h before the renewal (invoice issued), then to the due date (charged)."""
    clock[0] = RENEWAL - timedelta(hours=48)
    report = tick()
    assert report.issued == 1
    clock[0] = RENEWAL
    return tick()


def test_sign_up_pays_the_first_period_then_invoices_48h_ahead_and_renews_by_exactly_one_period(client, clock, plan):
    mandate = sign_up(client, plan.id, EMAIL)

    assert mandate.status == "active"
    assert (mandate.amount, mandate.currency, mandate.interval_unit) == (2900, "usd", "month")
    assert "charge $29.00" in mandate.authorisation_text
    [first] = invoices_of(mandate)
    assert (first.status, first.payment_status, first.period_end) == ("paid", "succeeded", RENEWAL)
    grant = grant_of(mandate)
    assert grant.source_kind == "subscription" and grant.gives_access(T0)
    assert grant.ends_at == RENEWAL
    assert templates_sent(EMAIL) == ["welcome", "payment_receipt"]

    # 48 h before the renewal minus a minute: nothing yet.
    clock[0] = RENEWAL - timedelta(hours=48, minutes=1)
    assert tick().issued == 0
    # Exactly 48 h ahead: the invoice is issued and the customer told the amount and date.
    clock[0] = RENEWAL - timedelta(hours=48)
    assert tick().issued == 1
    first, second = invoices_of(mandate)
    assert (second.status, second.payment_status) == ("open", "pending")
    assert (second.period_start, second.period_end, second.due_at) == (RENEWAL, THIRD, RENEWAL)
    assert second.issued_at == RENEWAL - timedelta(hours=48)
    [issued_email] = emails("invoice_issued", to=EMAIL)
    assert "$29.00" in issued_email.text_body and "10 February 2026" in issued_email.text_body
    assert "It renews your access to Gold." in issued_email.text_body  # the tick names the level too
    assert issued_email.subject == "Upcoming payment for Gold monthly: $29.00 on 10 February 2026"
    # A rerun is a no-op: no second invoice, no second email.
    assert tick().issued == 0
    assert len(invoices_of(mandate)) == 2 and len(emails("invoice_issued")) == 1
    assert grant_of(mandate).ends_at == RENEWAL

    # Due: charged off-session, receipt, grant extended by exactly one period.
    clock[0] = RENEWAL
    report = tick()
    assert report.outcomes == {"succeeded": 1}
    second = invoices_of(mandate)[1]
    assert (second.status, second.payment_status) == ("paid", "succeeded")
    assert [a.outcome for a in second.attempts] == ["succeeded"]
    assert grant_of(mandate).ends_at == THIRD
    assert len(emails("payment_receipt", to=EMAIL)) == 2
    # Running again charges nothing more.
    assert tick().charged == 0
    assert db.session.scalar(select(func.count(SandboxPayment.id))) == 2


def test_declined_then_recovered_on_the_scheduled_retry(client, clock, plan):
    mandate = sign_up(client, plan.id, EMAIL)
    set_card(mandate, "decline")

    report = renew_until_due(clock, mandate)
    assert report.outcomes == {"failed_retryable": 1}
    db.session.refresh(mandate)
    invoice = invoices_of(mandate)[1]
    assert mandate.status == "past_due"
    assert (invoice.status, invoice.payment_status, invoice.attempt_count) == ("open", "failed", 1)
    assert invoice.next_attempt_at == RENEWAL + timedelta(days=1)
    grant = grant_of(mandate)
    assert grant.status == "past_due" and grant.gives_access(RENEWAL + timedelta(days=6))
    assert grant.ends_at == RENEWAL + timedelta(days=7)  # grace_days
    [failed] = emails("invoice_payment_failed", to=EMAIL)
    assert "declined" in failed.text_body and link_in(failed).startswith(f"/invoices/{invoice.id}?t=")

    clock[0] = RENEWAL + timedelta(hours=23)
    assert tick().charged == 0

    set_card(mandate, "success")
    clock[0] = RENEWAL + timedelta(days=1)
    assert tick().outcomes == {"succeeded": 1}
    db.session.refresh(mandate)
    invoice = invoices_of(mandate)[1]
    assert mandate.status == "active"
    assert (invoice.status, invoice.payment_status) == ("paid", "succeeded")
    assert [a.outcome for a in invoice.attempts] == ["failed_retryable", "succeeded"]
    grant = grant_of(mandate)
    assert grant.status == "active" and grant.ends_at == THIRD  # exactly one period past the paid period
    assert templates_sent(EMAIL)[-1] == "payment_receipt"


def test_declined_on_every_retry_becomes_unpaid_and_the_grant_is_revoked(client, clock, plan):
    mandate = sign_up(client, plan.id, EMAIL)
    set_card(mandate, "insufficient_funds")
    renew_until_due(clock, mandate)

    for day, expected_next in ((1, 3), (3, 5)):
        clock[0] = RENEWAL + timedelta(days=day) - timedelta(minutes=1)
        assert tick().charged == 0  # nothing before the scheduled retry
        clock[0] = RENEWAL + timedelta(days=day)
        assert tick().outcomes == {"failed_retryable": 1}
        invoice = invoices_of(mandate)[1]
        assert invoice.next_attempt_at == RENEWAL + timedelta(days=expected_next)
        assert grant_of(mandate).gives_access(clock[0])
        db.session.refresh(mandate)
        assert mandate.status == "past_due"

    clock[0] = RENEWAL + timedelta(days=5)
    report = tick()
    assert report.outcomes == {"failed_retryable": 1} and report.unpaid == 1
    db.session.refresh(mandate)
    invoice = invoices_of(mandate)[1]
    assert mandate.status == "unpaid"
    assert invoice.status == "uncollectible" and invoice.attempt_count == 4
    assert [a.outcome for a in invoice.attempts] == ["failed_retryable"] * 4
    grant = grant_of(mandate)
    assert (grant.status, grant.revoke_reason) == ("revoked", "payment_failed")
    assert not grant.gives_access(clock[0])
    assert len(emails("invoice_payment_failed", to=EMAIL)) == 1  # one email, not one per retry
    assert len(emails("subscription_unpaid", to=EMAIL)) == 1
    # Nothing more happens afterwards: no charge, no new invoice.
    clock[0] = THIRD
    report = tick()
    assert (report.charged, report.issued, report.unpaid) == (0, 0, 0)


def test_requires_action_is_never_retried_and_the_customer_authenticates_from_the_email(client, clock, plan):
    mandate = sign_up(client, plan.id, EMAIL)
    set_card(mandate, "requires_action")
    assert renew_until_due(clock, mandate).outcomes == {"requires_action": 1}
    db.session.refresh(mandate)
    invoice = invoices_of(mandate)[1]
    assert mandate.status == "past_due"
    assert invoice.payment_status == "requires_action" and invoice.next_attempt_at is None
    assert grant_of(mandate).gives_access(RENEWAL + timedelta(days=1))
    [action] = emails("invoice_action_required", to=EMAIL)

    for day in (1, 3):  # the retry schedule does not touch it
        clock[0] = RENEWAL + timedelta(days=day)
        assert tick().charged == 0
    assert len(invoices_of(mandate)[1].attempts) == 1

    # The customer follows the link (signed out), authenticates on the bank's (sandbox) page.
    page = client.get(link_in(action))
    assert page.status_code == 200 and "Authenticate the payment" in page.get_data(as_text=True)
    token = link_in(action).split("t=")[1]
    response = client.post(f"/invoices/{invoice.id}/authenticate", data={"t": token})
    assert response.status_code == 302
    bank = path_of(response.headers["Location"])
    assert bank.startswith("/sandbox/authenticate/")
    response = client.post(bank, data={"decision": "complete"})
    response = client.get(path_of(response.headers["Location"]))
    assert response.status_code == 302
    db.session.expire_all()
    invoice = invoices_of(mandate)[1]
    db.session.refresh(mandate)
    assert (invoice.status, mandate.status) == ("paid", "active")
    assert [a.outcome for a in invoice.attempts] == ["requires_action", "succeeded"]
    assert grant_of(mandate).ends_at == THIRD
    assert templates_sent(EMAIL)[-1] == "payment_receipt"


def test_requires_action_left_alone_ends_unpaid_when_the_schedule_runs_out(client, clock, plan):
    mandate = sign_up(client, plan.id, EMAIL)
    set_card(mandate, "requires_action")
    renew_until_due(clock, mandate)
    clock[0] = RENEWAL + timedelta(days=5)
    assert tick().unpaid == 1
    db.session.refresh(mandate)
    assert mandate.status == "unpaid"
    assert grant_of(mandate).revoke_reason == "payment_failed"


def test_hard_decline_stops_retries_and_the_customer_pays_with_a_new_card(client, clock, plan):
    mandate = sign_up(client, plan.id, EMAIL)
    set_card(mandate, "expired_card")
    assert renew_until_due(clock, mandate).outcomes == {"failed_hard": 1}
    invoice = invoices_of(mandate)[1]
    assert invoice.next_attempt_at is None
    clock[0] = RENEWAL + timedelta(days=1)
    assert tick().charged == 0

    link = link_in(emails("invoice_payment_failed", to=EMAIL)[0])
    page = client.get(link).get_data(as_text=True)
    assert "Pay with a new card" in page and "The card has expired." in page
    token = link.split("t=")[1]
    response = client.post(f"/invoices/{invoice.id}/card", data={"t": token})
    checkout = path_of(response.headers["Location"])
    response = client.post(checkout, data={"cardnumber": "5555555555554444", "exp": "11/33", "cvc": "321"})
    response = client.get(path_of(response.headers["Location"]))
    assert response.status_code == 302
    db.session.expire_all()
    invoice = invoices_of(mandate)[1]
    db.session.refresh(mandate)
    assert invoice.status == "paid" and mandate.status == "active"
    assert (mandate.payment_method.brand, mandate.payment_method.last4) == ("mastercard", "4444")
    assert grant_of(mandate).ends_at == THIRD


def test_customer_cancels_from_their_account_and_keeps_access_to_the_end_of_the_paid_period(client, clock, plan):
    mandate = sign_up(client, plan.id, EMAIL)
    clock[0] = RENEWAL - timedelta(hours=48)
    tick()  # the next invoice is already issued when they cancel
    with client.session_transaction() as browser:
        browser["member_id"] = mandate.member_id
    page = client.get("/subscriptions").get_data(as_text=True)
    assert "Gold monthly" in page and "Cancel" in page and "Visa ending 4242" in page

    response = client.post(f"/subscriptions/{mandate.id}/cancel", data={"next": "/subscriptions"})
    assert response.status_code == 302
    db.session.expire_all()
    db.session.refresh(mandate)
    assert (mandate.status, mandate.cancel_reason) == ("cancelled", "customer_cancelled")
    upcoming = invoices_of(mandate)[1]
    assert (upcoming.status, upcoming.void_reason) == ("void", "customer_cancelled")
    [cancelled] = emails("subscription_cancelled", to=EMAIL)
    assert "10 February 2026" in cancelled.text_body  # access until
    grant = grant_of(mandate)
    assert grant.gives_access(RENEWAL - timedelta(minutes=1)) and grant.ends_at == RENEWAL

    clock[0] = RENEWAL
    report = tick()
    assert (report.charged, report.issued) == (0, 0)
    assert not grant_of(mandate).gives_access(RENEWAL)
    assert db.session.scalar(select(func.count(PaymentAttempt.id))) == 1  # only the sign-up charge
    # Cancelling twice is refused politely.
    client.post(f"/subscriptions/{mandate.id}/cancel")
    assert "already ended" in client.get("/subscriptions").get_data(as_text=True)


def test_customer_cannot_cancel_someone_elses_mandate(client, clock, plan):
    mandate = sign_up(client, plan.id, EMAIL)
    other = Member(email="eve@example.com", name="Eve")
    db.session.add(other)
    db.session.commit()
    with client.session_transaction() as browser:
        browser["member_id"] = other.id
    assert client.post(f"/subscriptions/{mandate.id}/cancel").status_code == 404
    db.session.refresh(mandate)
    assert mandate.status == "active"


def test_paused_plan_takes_no_sign_ups_but_keeps_billing_existing_mandates(client, api, clock, plan):
    mandate = sign_up(client, plan.id, EMAIL)
    assert api.post(f"/api/v1/plans/{plan.id}/pause").json["state"] == "paused"

    page = client.get(f"/plans/{plan.id}")
    assert page.status_code == 200 and "not open for new sign-ups" in page.get_data(as_text=True)
    refused = client.post(f"/plans/{plan.id}", data={"email": "late@example.com", "agree": "yes"})
    assert refused.status_code == 409
    assert db.session.scalar(select(Member).where(Member.email == "late@example.com")) is None

    assert renew_until_due(clock, mandate).outcomes == {"succeeded": 1}
    assert grant_of(mandate).ends_at == THIRD

    assert api.post(f"/api/v1/plans/{plan.id}/resume").json["state"] == "active"
    sign_up(client, plan.id, "late@example.com")


def test_deleted_plan_cancels_every_mandate_voids_open_invoices_and_emails_each_customer(client, api, clock, plan):
    ada = sign_up(client, plan.id, EMAIL)
    bob = sign_up(client, plan.id, "bob@example.com")
    set_card(bob, "decline")
    clock[0] = RENEWAL - timedelta(hours=48)
    tick()
    clock[0] = RENEWAL
    tick()  # bob is past due with an open invoice; ada has paid

    response = api.delete(f"/api/v1/plans/{plan.id}")
    assert response.status_code == 200 and response.json["state"] == "deleted"
    db.session.expire_all()
    for mandate in (ada, bob):
        db.session.refresh(mandate)
        assert (mandate.status, mandate.cancel_reason) == ("cancelled", "plan_deleted")
    assert invoices_of(bob)[1].status == "void"
    assert invoices_of(ada)[1].status == "paid"
    for to in (EMAIL, "bob@example.com"):
        [email] = emails("subscription_cancelled", to=to)
        assert "no longer offered" in email.text_body
    assert grant_of(ada).gives_access(RENEWAL + timedelta(days=20))  # paid through the period
    assert not grant_of(bob).gives_access(RENEWAL + timedelta(minutes=1))  # grace ends with the mandate

    assert client.get(f"/plans/{plan.id}").status_code == 404
    clock[0] = THIRD
    report = tick()
    assert (report.charged, report.issued, report.unpaid) == (0, 0, 0)


def test_unsigned_mandate_expires_after_24_hours(client, clock, plan):
    response = client.post(f"/plans/{plan.id}", data={"email": EMAIL, "agree": "yes"})
    assert response.status_code == 302
    clock[0] = T0 + timedelta(hours=23, minutes=59)
    assert tick().expired == 0
    clock[0] = T0 + timedelta(hours=24)
    assert tick().expired == 1
    assert api_status(EMAIL) == "expired"
    assert templates_sent(EMAIL) == ["welcome"]  # a new member was created and welcomed; no billing email


def api_status(email: str) -> str:
    from billing.models import Mandate

    return db.session.scalar(select(Mandate.status).join(Member).where(Member.email == email))


def test_declined_at_sign_up_leaves_no_access_until_paid_with_another_card(client, clock, plan):
    mandate = sign_up(client, plan.id, EMAIL, card="decline")
    assert mandate.status == "past_due"
    [first] = invoices_of(mandate)
    assert first.payment_status == "failed"
    assert grant_of(mandate) is None

    with client.session_transaction() as browser:  # signed in, no token needed
        browser["member_id"] = mandate.member_id
    page = client.get(f"/invoices/{first.id}").get_data(as_text=True)
    assert "Retry with my card" in page and "Pay with a new card" in page
    client.post(f"/invoices/{first.id}/pay")  # same card: declined again
    db.session.expire_all()
    assert [a.outcome for a in invoices_of(mandate)[0].attempts] == ["failed_retryable", "failed_retryable"]

    response = client.post(f"/invoices/{first.id}/card")
    response = client.post(path_of(response.headers["Location"]),
                           data={"cardnumber": "4242 4242 4242 4242", "exp": "01/30", "cvc": "999"})
    client.get(path_of(response.headers["Location"]))
    db.session.expire_all()
    db.session.refresh(mandate)
    assert invoices_of(mandate)[0].status == "paid" and mandate.status == "active"
    assert grant_of(mandate).gives_access(T0)


def test_existing_member_signing_up_gets_no_second_welcome(client, clock, plan):
    sign_up(client, plan.id, EMAIL)
    second_plan = make_plan(name="Silver", amount=900, interval_unit="week")
    sign_up(client, second_plan.id, "  ADA@example.com ")
    assert templates_sent(EMAIL).count("welcome") == 1
    assert db.session.scalar(select(func.count(Member.id))) == 1


def test_a_gateway_error_is_retried_an_hour_later_without_counting_as_a_decline(client, clock, plan):
    mandate = sign_up(client, plan.id, EMAIL)
    set_card(mandate, "processing_error")
    assert renew_until_due(clock, mandate).outcomes == {"gateway_error": 1}
    db.session.refresh(mandate)
    invoice = invoices_of(mandate)[1]
    assert mandate.status == "active" and grant_of(mandate).status == "active"
    assert (invoice.payment_status, invoice.attempt_count) == ("pending", 0)
    assert invoice.next_attempt_at == RENEWAL + timedelta(hours=1)
    assert emails("invoice_payment_failed") == []
    set_card(mandate, "success")
    clock[0] = RENEWAL + timedelta(hours=1)
    assert tick().outcomes == {"succeeded": 1}
    assert grant_of(mandate).ends_at == THIRD


def test_an_invoice_a_tick_is_charging_cannot_be_paid_twice_by_hand(client, api, clock, plan):
    mandate = sign_up(client, plan.id, EMAIL, card="decline")
    [invoice] = invoices_of(mandate)
    invoice.claim_token, invoice.claimed_at = "another-tick", T0  # a tick is in the middle of charging it
    db.session.commit()
    with client.session_transaction() as browser:
        browser["member_id"] = mandate.member_id
    assert client.post(f"/invoices/{invoice.id}/pay").status_code == 409
    response = api.post(f"/api/v1/invoices/{invoice.id}/retry")
    assert (response.status_code, response.json["code"]) == (409, "invoice_busy")
    assert len(invoices_of(mandate)[0].attempts) == 1


def test_a_mandate_cannot_be_cancelled_while_a_tick_charges_its_invoice(client, api, clock, plan):
    mandate = sign_up(client, plan.id, EMAIL, card="decline")
    [invoice] = invoices_of(mandate)
    invoice.claim_token, invoice.claimed_at = "another-tick", T0
    db.session.commit()
    response = api.post(f"/api/v1/mandates/{mandate.id}/cancel")
    assert (response.status_code, response.json["code"]) == (409, "invoice_busy")
    db.session.expire_all()
    assert (mandate.status, invoices_of(mandate)[0].status) == ("past_due", "open")


def test_one_broken_invoice_does_not_hold_up_the_rest_of_its_batch(client, clock, plan, monkeypatch):
    ada = sign_up(client, plan.id, EMAIL)
    bob = sign_up(client, plan.id, "bob@example.com")
    clock[0] = RENEWAL - timedelta(hours=48)
    tick()
    broken = invoices_of(bob)[1].id
    from billing import charges as invoice_services

    real = invoice_services.charge_invoice

    def charge(session, invoice, **kwargs):
        if invoice.id == broken:
            raise RuntimeError("corrupt row")
        return real(session, invoice, **kwargs)

    monkeypatch.setattr(invoice_services, "charge_invoice", charge)
    clock[0] = RENEWAL
    report = tick()
    assert report.outcomes == {"succeeded": 1, "error": 1}
    assert invoices_of(ada)[1].status == "paid"
    stuck = invoices_of(bob)[1]
    assert (stuck.status, stuck.claim_token, stuck.next_attempt_at) == ("open", None, RENEWAL + timedelta(hours=1))
    assert db.session.scalar(select(func.count(SandboxPayment.id))) == 3  # two sign-ups and ada's renewal
