"""The Stripe gateway through the official SDK, with Stripe's HTTP mocked by ``responses``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest
import responses

import timeutil
from billing.gateways.base import CardDetails
from billing.gateways.stripe_gateway import STRIPE_API_VERSION, StripeGateway
from billing.models import AttemptOutcome
from extensions import db
from tests.billing.helpers import emails, grant_of, invoices_of, make_plan, tick

API = "https://api.stripe.com/v1"
T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
CARD = CardDetails(token="pm_card_1", brand="visa", last4="4242", exp_month=12, exp_year=2034,
                   customer_ref="cus_123")


@pytest.fixture
def app_config(app_config):
    return {**app_config, "BILLING_GATEWAY": "stripe", "STRIPE_SECRET_KEY": "sk_test_not_a_real_key",
            "STRIPE_MAX_NETWORK_RETRIES": 0}


def form(call) -> dict:
    return {k: v[0] for k, v in parse_qs(call.request.body).items()}


def intent(status: str, **fields) -> dict:
    return {"id": "pi_1", "object": "payment_intent", "status": status, **fields}


def card_error(code: str, decline_code: str | None = None, status: str = "requires_payment_method") -> dict:
    return {"error": {"type": "card_error", "code": code, "decline_code": decline_code,
                      "message": f"Card error: {code}", "payment_intent": intent(status, id="pi_err")}}


@pytest.mark.parametrize("status, body, outcome", [
    (200, intent("succeeded"), AttemptOutcome.SUCCEEDED),
    (200, intent("requires_action"), AttemptOutcome.REQUIRES_ACTION),
    (402, card_error("card_declined", "insufficient_funds"), AttemptOutcome.FAILED_RETRYABLE),
    (402, card_error("card_declined", "generic_decline"), AttemptOutcome.FAILED_RETRYABLE),
    (402, card_error("card_declined", "stolen_card"), AttemptOutcome.FAILED_HARD),
    (402, card_error("expired_card"), AttemptOutcome.FAILED_HARD),
    (402, card_error("authentication_required", "authentication_required", "requires_action"),
     AttemptOutcome.REQUIRES_ACTION),
    (500, {"error": {"type": "api_error", "message": "Something went wrong on Stripe's end."}},
     AttemptOutcome.UNKNOWN),  # it may have run: only asking Stripe tells
    (200, intent("processing"), AttemptOutcome.PROCESSING),
    (429, {"error": {"type": "invalid_request_error", "code": "rate_limit", "message": "Too many"}},
     AttemptOutcome.GATEWAY_ERROR),
])
def test_off_session_charges_map_stripe_answers_to_outcomes(app_ctx, mocked_responses, status, body, outcome):
    mocked_responses.add(responses.POST, f"{API}/payment_intents", json=body, status=status)
    result = StripeGateway("sk_test_not_a_real_key").charge(
        db.session, card=CARD, amount=2900, currency="usd", idempotency_key="coursegate-invoice-7-attempt-1",
        description="Gold monthly")
    assert result.outcome == outcome
    call = mocked_responses.calls[0]
    sent = form(call)
    assert sent == {"amount": "2900", "currency": "usd", "customer": "cus_123", "payment_method": "pm_card_1",
                    "off_session": "true", "confirm": "true", "description": "Gold monthly",
                    "metadata[coursegate_attempt]": "coursegate-invoice-7-attempt-1"}
    assert call.request.headers["Idempotency-Key"] == "coursegate-invoice-7-attempt-1"
    assert call.request.headers["Stripe-Version"] == STRIPE_API_VERSION
    assert call.request.headers["Authorization"] == "Bearer sk_test_not_a_real_key"
    if status == 402:
        assert result.reference == "pi_err"


def test_network_failure_leaves_the_charge_in_doubt(app_ctx, mocked_responses):
    import requests

    mocked_responses.add(responses.POST, f"{API}/payment_intents", body=requests.ConnectionError("down"))
    result = StripeGateway("sk_test_x").charge(db.session, card=CARD, amount=100, currency="usd",
                                               idempotency_key="k", description="d")
    assert result.outcome == AttemptOutcome.UNKNOWN


def setup_session(status="complete") -> dict:
    return {
        "id": "cs_test_1", "object": "checkout.session", "status": status, "customer": "cus_123",
        "url": "https://checkout.stripe.com/c/pay/cs_test_1",
        "setup_intent": {"id": "seti_1", "object": "setup_intent", "status": "succeeded", "payment_method": {
            "id": "pm_card_1", "object": "payment_method",
            "card": {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2034}}},
    }


def test_sign_up_with_stripe_checkout_in_setup_mode_then_renewal_off_session(client, app_ctx, mocked_responses):
    with timeutil.frozen(T0) as clock:
        plan = make_plan()
        mocked_responses.add(responses.POST, f"{API}/customers", json={"id": "cus_123", "object": "customer"})
        mocked_responses.add(responses.POST, f"{API}/checkout/sessions", json=setup_session("open"))
        response = client.post(f"/plans/{plan.id}", data={"email": "ada@example.com", "agree": "yes"})
        assert response.headers["Location"] == "https://checkout.stripe.com/c/pay/cs_test_1"
        assert form(mocked_responses.calls[0]) == {"email": "ada@example.com"}
        created = form(mocked_responses.calls[1])
        assert created["mode"] == "setup" and created["customer"] == "cus_123"
        assert created["success_url"].endswith("/authorised?session_id={CHECKOUT_SESSION_ID}")

        # Stripe sends the customer back; we read the session and charge the first period.
        mocked_responses.add(responses.GET, f"{API}/checkout/sessions/cs_test_1", json=setup_session())
        mocked_responses.add(responses.POST, f"{API}/payment_intents", json=intent("succeeded", id="pi_first"))
        mandate_id = db.session.scalar(db.select(db.text("max(id)")).select_from(db.text("billing_mandates")))
        response = client.get(f"/subscriptions/{mandate_id}/authorised?session_id=cs_test_1")
        assert response.status_code == 302
        db.session.expire_all()
        from billing.models import Mandate

        mandate = db.session.get(Mandate, mandate_id)
        assert mandate.status == "active" and mandate.gateway == "stripe"
        method = mandate.payment_method
        assert (method.token, method.customer_ref, method.brand, method.last4) == ("pm_card_1", "cus_123", "visa",
                                                                                 "4242")
        [first] = invoices_of(mandate)
        assert first.status == "paid" and first.attempts[0].gateway_ref == "pi_first"

        # Renewal declined with insufficient funds: past due, retry scheduled, email sent.
        mocked_responses.add(responses.POST, f"{API}/payment_intents",
                             json=card_error("card_declined", "insufficient_funds"), status=402)
        renewal = first.period_end
        clock[0] = renewal - timedelta(hours=48)
        tick()
        clock[0] = renewal
        assert tick().outcomes == {"failed_retryable": 1}
        second = invoices_of(mandate)[1]
        assert second.attempts[0].message == "Card error: card_declined"
        assert second.next_attempt_at == renewal + timedelta(days=1)
        assert len(emails("invoice_payment_failed")) == 1
        assert grant_of(mandate).status == "past_due"


def test_a_return_without_the_right_session_is_refused(client, app_ctx, mocked_responses):
    with timeutil.frozen(T0):
        plan = make_plan()
        mocked_responses.add(responses.POST, f"{API}/customers", json={"id": "cus_123", "object": "customer"})
        mocked_responses.add(responses.POST, f"{API}/checkout/sessions", json=setup_session("open"))
        client.post(f"/plans/{plan.id}", data={"email": "ada@example.com", "agree": "yes"})
        response = client.get("/subscriptions/1/authorised?session_id=cs_someone_else")
        assert response.status_code == 422
        mocked_responses.add(responses.GET, f"{API}/checkout/sessions/cs_test_1", json=setup_session("open"))
        assert client.get("/subscriptions/1/authorised?session_id=cs_test_1").status_code == 422


def test_authentication_redirects_to_the_bank_and_confirms(app_ctx, mocked_responses):
    gateway = StripeGateway("sk_test_x")
    mocked_responses.add(responses.POST, f"{API}/payment_intents/pi_1/confirm", json=intent(
        "requires_action", next_action={"type": "redirect_to_url",
                                        "redirect_to_url": {"url": "https://hooks.stripe.com/3ds/x"}}))
    url = gateway.start_authentication(db.session, "pi_1", return_url="http://coursegate.test/back",
                                       payment_method="pm_card_1")
    assert url == "https://hooks.stripe.com/3ds/x"
    # Stripe's off-session recovery: the intent is confirmed again with its card.
    assert form(mocked_responses.calls[0]) == {"return_url": "http://coursegate.test/back",
                                               "payment_method": "pm_card_1"}
    mocked_responses.add(responses.GET, f"{API}/payment_intents/pi_1", json=intent("succeeded"))
    assert gateway.confirm(db.session, "pi_1").outcome == AttemptOutcome.SUCCEEDED
    mocked_responses.add(responses.GET, f"{API}/payment_intents/pi_1", json=intent(
        "requires_payment_method", last_payment_error={"code": "payment_intent_authentication_failure",
                                                       "message": "Authentication failed"}))
    failed = gateway.confirm(db.session, "pi_1")
    assert (failed.outcome, failed.message) == (AttemptOutcome.FAILED_RETRYABLE, "Authentication failed")
