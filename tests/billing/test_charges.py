"""Money moves at most once: a charge whose answer was lost or is still processing is settled, never repeated.

The sandbox plays the provider (its payments are the provider's record); Stripe's HTTP is mocked with
``responses``, its webhooks signed with the official SDK.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import responses
import stripe
from sqlalchemy import func, select

import timeutil
from billing import charges
from billing.gateways import sandbox
from billing.models import Invoice, Mandate, PaymentMethod, SandboxPayment
from extensions import db
from tests.billing.helpers import (emails, grant_of, invoices_of, link_in, make_plan, path_of, set_card, sign_up,
                                   templates_sent, tick)
from tests.factories import make_integration

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
RENEWAL = datetime(2026, 2, 10, 12, 0, tzinfo=UTC)
THIRD = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
EMAIL = "ada@example.com"
API = "https://api.stripe.com/v1"
WHSEC = "whsec_billing_test_0123456789"


@pytest.fixture
def clock(app_ctx):
    with timeutil.frozen(T0) as moment:
        yield moment


def charged_at_provider() -> int:
    return db.session.scalar(select(func.count(SandboxPayment.id)))


def renew(clock, mandate):
    clock[0] = RENEWAL - timedelta(hours=48)
    tick()
    clock[0] = RENEWAL
    return tick()


def renewed_with(client, clock, behaviour: str) -> Mandate:
    """A customer signed up, then their card behaves as ``behaviour`` for the renewal charge."""
    mandate = sign_up(client, make_plan().id, EMAIL)
    set_card(mandate, behaviour)
    assert renew(clock, mandate).outcomes == {behaviour if behaviour == "processing" else "unknown": 1}
    return mandate


def test_a_timeout_after_a_successful_charge_is_retried_and_charges_once(client, clock):
    plan = make_plan()
    mandate = sign_up(client, plan.id, EMAIL)
    set_card(mandate, "timeout_after_charge")
    before = charged_at_provider()

    assert renew(clock, mandate).outcomes == {"unknown": 1}
    invoice = invoices_of(mandate)[1]
    assert charged_at_provider() == before + 1  # the provider took the money; we never heard
    assert (invoice.status, invoice.payment_status) == ("open", "processing")
    assert grant_of(mandate).status == "active"  # in doubt is not a failure: no past due, no email
    assert templates_sent(EMAIL)[-1] == "invoice_issued"

    # The next ticks come round: the gateway is asked first, and its record settles the attempt.
    clock[0] = RENEWAL + timedelta(minutes=5)
    assert tick().charged == 0  # not due yet: the recheck waits a little
    clock[0] = RENEWAL + charges.RECHECK_AFTER
    assert tick().outcomes == {"succeeded": 1}
    for hours in (1, 2, 25):
        clock[0] = RENEWAL + timedelta(hours=hours)
        assert tick().charged == 0
    invoice = invoices_of(mandate)[1]
    assert invoice.status == "paid"
    assert charged_at_provider() == before + 1
    [attempt] = invoice.attempts
    assert (attempt.outcome, attempt.idempotency_key) == ("succeeded", f"coursegate-invoice-{invoice.id}-attempt-1")
    assert attempt.settled_at is not None
    assert grant_of(mandate).ends_at == THIRD
    assert len(emails("payment_receipt", to=EMAIL)) == 2  # sign-up and this renewal, once each


def test_the_customer_paying_while_a_charge_is_in_doubt_settles_it_instead_of_charging_again(client, clock):
    mandate = renewed_with(client, clock, "timeout_after_charge")
    before = charged_at_provider()
    invoice = invoices_of(mandate)[1]
    page = client.get(link_in(emails("invoice_issued", to=EMAIL)[-1]))
    assert "Your payment is being processed" in page.get_data(as_text=True)
    assert "Pay now" not in page.get_data(as_text=True)
    from billing import charges as billing_charges

    billing_charges.retry_now(db.session, db.session.get(Invoice, invoice.id), initiated_by="customer")
    db.session.commit()
    db.session.expire_all()
    assert invoices_of(mandate)[1].status == "paid"
    assert charged_at_provider() == before
    assert len(invoices_of(mandate)[1].attempts) == 1


def test_processing_settles_from_the_sweep_once_the_provider_settles(client, clock):
    mandate = renewed_with(client, clock, "processing")
    invoice = invoices_of(mandate)[1]
    [attempt] = invoice.attempts
    assert invoice.payment_status == "processing" and attempt.gateway_ref.startswith("sbx_pi_")

    clock[0] = RENEWAL + timedelta(minutes=10)
    assert charges.settle_open_attempts(db.session) == 0  # still processing at the provider
    sandbox.settle_payment(db.session, attempt.gateway_ref, "succeeded")
    db.session.commit()
    clock[0] = RENEWAL + timedelta(minutes=20)
    assert charges.settle_open_attempts(db.session) == 1
    db.session.expire_all()
    invoice = invoices_of(mandate)[1]
    assert invoice.status == "paid" and [a.outcome for a in invoice.attempts] == ["succeeded"]
    assert charged_at_provider() == 2  # sign-up and this renewal
    assert tick().charged == 0


def test_processing_that_fails_at_the_provider_is_a_decline_with_its_retry_schedule(client, clock):
    mandate = renewed_with(client, clock, "processing")
    attempt = invoices_of(mandate)[1].attempts[0]
    sandbox.settle_payment(db.session, attempt.gateway_ref, "failed")
    db.session.commit()
    clock[0] = RENEWAL + timedelta(minutes=20)
    assert charges.settle_open_attempts(db.session) == 1
    db.session.expire_all()
    invoice = invoices_of(mandate)[1]
    assert (invoice.payment_status, invoice.next_attempt_at) == ("failed", RENEWAL + timedelta(days=1))
    assert grant_of(mandate).status == "past_due"
    assert len(emails("invoice_payment_failed", to=EMAIL)) == 1


# --- Stripe ----------------------------------------------------------------------------------------------

@pytest.fixture
def stripe_billing(app):
    app.config.update(BILLING_GATEWAY="stripe", STRIPE_SECRET_KEY="sk_test_x", STRIPE_MAX_NETWORK_RETRIES=0)


def stripe_invoice(clock, behaviour_ref: str = "pm_card_1") -> Invoice:
    """An active Stripe mandate whose renewal invoice is due now (signed up before, card on file)."""
    plan = make_plan()
    from membership.models import Member

    member = Member(email=EMAIL, name="Ada")
    db.session.add(member)
    db.session.flush()
    method = PaymentMethod(member_id=member.id, gateway="stripe", token=behaviour_ref, customer_ref="cus_123",
                           brand="visa", last4="4242", exp_month=12, exp_year=2034)
    db.session.add(method)
    db.session.flush()
    mandate = Mandate(member_id=member.id, plan_id=plan.id, payment_method_id=method.id, gateway="stripe",
                      amount=plan.amount, currency=plan.currency, interval_unit=plan.interval_unit,
                      interval_count=plan.interval_count, authorisation_text="I authorise.", status="active",
                      signed_at=T0, created_at=T0, current_period_end=RENEWAL)
    db.session.add(mandate)
    db.session.commit()
    clock[0] = RENEWAL - timedelta(hours=48)
    tick()
    clock[0] = RENEWAL
    return invoices_of(mandate)[0]


def intent(status: str, **fields) -> dict:
    return {"id": "pi_1", "object": "payment_intent", "status": status, **fields}


def creates(mocked) -> list:
    return [c for c in mocked.calls if c.request.method == "POST" and urlsplit(c.request.url).path == "/v1/payment_intents"]


def test_stripe_timeout_then_the_retry_finds_the_intent_by_metadata_and_charges_once(
        client, clock, stripe_billing, mocked_responses):
    import requests

    invoice = stripe_invoice(clock)
    mocked_responses.add(responses.POST, f"{API}/payment_intents", body=requests.ReadTimeout("read timed out"))
    assert tick().outcomes == {"unknown": 1}
    key = f"coursegate-invoice-{invoice.id}-attempt-1"

    # Stripe did charge; the retry asks first (a list of the customer's intents: consistent, unlike search).
    mocked_responses.add(responses.GET, f"{API}/payment_intents", json={
        "object": "list", "has_more": False, "url": "/v1/payment_intents", "data": [
            intent("succeeded", id="pi_other", metadata={"coursegate_attempt": "coursegate-invoice-999-attempt-1"}),
            intent("succeeded", id="pi_ours", metadata={"coursegate_attempt": key,
                                                         "coursegate_invoice": str(invoice.id)})]})
    clock[0] = RENEWAL + charges.RECHECK_AFTER
    assert tick().outcomes == {"succeeded": 1}
    assert len(creates(mocked_responses)) == 1
    listed = parse_qs(urlsplit(mocked_responses.calls[-1].request.url).query)
    assert listed["customer"] == ["cus_123"]
    db.session.expire_all()
    invoice = db.session.get(Invoice, invoice.id)
    assert invoice.status == "paid"
    [attempt] = invoice.attempts
    assert (attempt.gateway_ref, attempt.idempotency_key) == ("pi_ours", key)


def test_stripe_5xx_with_no_intent_at_stripe_is_resent_under_the_same_key(client, clock, stripe_billing,
                                                                         mocked_responses):
    invoice = stripe_invoice(clock)
    mocked_responses.add(responses.POST, f"{API}/payment_intents", status=500,
                         json={"error": {"type": "api_error", "message": "Something went wrong."}})
    assert tick().outcomes == {"unknown": 1}
    mocked_responses.add(responses.GET, f"{API}/payment_intents",
                         json={"object": "list", "has_more": False, "url": "/v1/payment_intents", "data": []})
    mocked_responses.add(responses.POST, f"{API}/payment_intents", json=intent("succeeded", id="pi_2"))
    clock[0] = RENEWAL + charges.RECHECK_AFTER
    assert tick().outcomes == {"succeeded": 1}
    sent = creates(mocked_responses)
    assert [c.request.headers["Idempotency-Key"] for c in sent] == [f"coursegate-invoice-{invoice.id}-attempt-1"] * 2
    db.session.expire_all()
    assert len(db.session.get(Invoice, invoice.id).attempts) == 1


def stripe_event_post(client, integration_id: int, event_type: str, obj: dict):
    body = json.dumps({"id": f"evt_{event_type}", "object": "event", "type": event_type, "livemode": True,
                       "created": int(time.time()), "data": {"object": obj}})
    header = stripe.WebhookSignature.generate_signature_header(body, WHSEC)
    return client.post(f"/webhooks/stripe/{integration_id}", data=body, content_type="application/json",
                       headers={"Stripe-Signature": header})


def test_processing_settles_from_the_payment_intent_succeeded_webhook(client, clock, stripe_billing,
                                                                     mocked_responses):
    invoice = stripe_invoice(clock)
    integration = make_integration(kind="stripe", secret=WHSEC, api_key="rk_test_123")
    db.session.commit()
    mocked_responses.add(responses.POST, f"{API}/payment_intents", json=intent("processing", id="pi_slow"))
    assert tick().outcomes == {"processing": 1}

    response = stripe_event_post(client, integration.id, "payment_intent.succeeded",
                                 intent("succeeded", id="pi_slow"))
    assert response.status_code == 200 and response.get_json()["status"] == "settled"
    db.session.expire_all()
    invoice = db.session.get(Invoice, invoice.id)
    assert invoice.status == "paid" and invoice.attempts[0].outcome == "succeeded"
    assert grant_of(invoice.mandate).ends_at == THIRD
    # Stripe delivers again; someone else's intent: nothing changes.
    again = stripe_event_post(client, integration.id, "payment_intent.succeeded", intent("succeeded", id="pi_slow"))
    assert again.get_json()["status"] == "ignored"
    other = stripe_event_post(client, integration.id, "payment_intent.succeeded", intent("succeeded", id="pi_x"))
    assert other.get_json()["status"] == "ignored"
    assert len(emails("payment_receipt", to=EMAIL)) == 1
    clock[0] = RENEWAL + timedelta(days=1)
    assert tick().charged == 0  # the webhook's answer stands; no charge, no lookup (mocks would fail)


def test_processing_that_fails_settles_from_the_payment_failed_webhook(client, clock, stripe_billing,
                                                                      mocked_responses):
    invoice = stripe_invoice(clock)
    integration = make_integration(kind="stripe", secret=WHSEC, api_key="rk_test_123")
    db.session.commit()
    mocked_responses.add(responses.POST, f"{API}/payment_intents", json=intent("processing", id="pi_slow"))
    tick()
    response = stripe_event_post(client, integration.id, "payment_intent.payment_failed", intent(
        "requires_payment_method", id="pi_slow",
        last_payment_error={"code": "card_declined", "decline_code": "insufficient_funds",
                            "message": "Your card has insufficient funds."}))
    assert response.get_json()["status"] == "settled"
    db.session.expire_all()
    invoice = db.session.get(Invoice, invoice.id)
    assert invoice.payment_status == "failed" and invoice.attempts[0].outcome == "failed_retryable"
    assert invoice.next_attempt_at == RENEWAL + timedelta(days=1)
    assert len(emails("invoice_payment_failed", to=EMAIL)) == 1


def test_3ds_recovery_confirms_with_the_card_and_a_second_decline_is_said_plainly(client, clock, stripe_billing,
                                                                                 mocked_responses):
    invoice = stripe_invoice(clock)
    mocked_responses.add(responses.POST, f"{API}/payment_intents", status=402, json={"error": {
        "type": "card_error", "code": "authentication_required", "decline_code": "authentication_required",
        "message": "This payment needs authentication.",
        "payment_intent": intent("requires_payment_method", id="pi_3ds")}})
    assert tick().outcomes == {"requires_action": 1}
    link = link_in(emails("invoice_action_required", to=EMAIL)[-1])
    page = client.get(link).get_data(as_text=True)
    assert "Your bank asks you to confirm this payment." in page

    mocked_responses.add(responses.POST, f"{API}/payment_intents/pi_3ds/confirm", json=intent(
        "requires_action", id="pi_3ds", next_action={"type": "redirect_to_url",
                                                    "redirect_to_url": {"url": "https://hooks.stripe.com/3ds/1"}}))
    response = client.post(f"/invoices/{invoice.id}/authenticate", data={"t": link.split("t=")[1]})
    assert response.headers["Location"] == "https://hooks.stripe.com/3ds/1"
    confirm = parse_qs(mocked_responses.calls[-1].request.body)
    assert confirm["payment_method"] == ["pm_card_1"]
    assert confirm["return_url"][0].startswith(f"http://coursegate.test/invoices/{invoice.id}/authenticated")

    # The bank declines after authentication: a second decline, said as such, with a way forward.
    mocked_responses.add(responses.GET, f"{API}/payment_intents/pi_3ds", json=intent(
        "requires_payment_method", id="pi_3ds",
        last_payment_error={"code": "card_declined", "decline_code": "generic_decline",
                            "message": "Your card was declined."}))
    response = client.get(path_of(confirm["return_url"][0]))
    page = client.get(path_of(response.headers["Location"])).get_data(as_text=True)
    assert "Your bank declined the payment again. Your card was declined. Please pay with another card" in page
    assert "Pay with a new card" in page
    db.session.expire_all()
    assert [a.outcome for a in db.session.get(Invoice, invoice.id).attempts] == ["requires_action",
                                                                               "failed_retryable"]


def test_a_webhook_for_an_invoice_a_tick_is_charging_asks_stripe_to_deliver_again(client, clock, stripe_billing,
                                                                                  mocked_responses):
    invoice = stripe_invoice(clock)
    integration = make_integration(kind="stripe", secret=WHSEC, api_key="rk_test_123")
    db.session.commit()
    mocked_responses.add(responses.POST, f"{API}/payment_intents", json=intent("processing", id="pi_slow"))
    tick()
    claimed = db.session.get(Invoice, invoice.id)
    claimed.claim_token, claimed.claimed_at = "another-tick", timeutil.now()
    db.session.commit()
    response = stripe_event_post(client, integration.id, "payment_intent.succeeded", intent("succeeded", id="pi_slow"))
    assert response.status_code == 503 and response.get_json()["code"] == "invoice_busy"
    db.session.expire_all()
    assert db.session.get(Invoice, invoice.id).payment_status == "processing"
