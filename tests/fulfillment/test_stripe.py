"""Stripe: signatures through the official SDK, Checkout line items fetched through the SDK (HTTP mocked)."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
import stripe

import timeutil
from tests.factories import make_course, make_integration, make_level, make_rule
from tests.fulfillment.helpers import emails, event, event_count, grants, members

SECRET = "whsec_test_secret_0123456789"
LINE_ITEMS_URL = "https://api.stripe.com/v1/checkout/sessions/{}/line_items"


@pytest.fixture
def stripe_shop(session):
    course = make_course(slug="stripe-course")
    gold = make_level(slug="gold", courses=[course])
    silver = make_level(slug="silver", courses=[course])
    integration = make_integration(kind="stripe", secret=SECRET, api_key="rk_test_123")
    make_rule(integration, "prod_GOLD", [gold])  # by product id
    make_rule(integration, "price_SILVER", [silver])  # by price id
    session.commit()
    return integration


def stripe_event(event_type: str, obj: dict, *, event_id: str = "evt_1", livemode: bool = True) -> dict:
    return {"id": event_id, "object": "event", "type": event_type, "livemode": livemode,
            "created": int(time.time()), "data": {"object": obj}}


def post(client, integration_id: int, payload: dict | str, *, secret: str = SECRET, header: str | None = None,
         timestamp: int | None = None):
    body = payload if isinstance(payload, str) else json.dumps(payload)
    if header is None:
        header = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=timestamp)
    return client.post(f"/webhooks/stripe/{integration_id}", data=body, content_type="application/json",
                       headers={"Stripe-Signature": header})


def session_completed(session_id: str = "cs_test_1", *, payment_status: str = "paid", email: str = "Buyer@Example.com",
                      event_id: str = "evt_1", **extra) -> dict:
    obj = {"id": session_id, "object": "checkout.session", "payment_status": payment_status,
           "customer_details": {"email": email, "name": "Stripe Buyer"}, "payment_intent": f"pi_{session_id}",
           "subscription": None, "mode": "payment", **extra}
    return stripe_event("checkout.session.completed", obj, event_id=event_id)


def line_items(*prices: tuple[str, str]) -> dict:
    return {"object": "list", "url": "/v1/checkout/sessions/cs/line_items", "has_more": False,
            "data": [{"id": f"li_{i}", "object": "item", "description": f"Item {i}", "quantity": 1,
                      "price": {"id": price, "object": "price", "product": product}}
                     for i, (product, price) in enumerate(prices)]}


def test_paid_checkout_fetches_line_items_and_matches_product_or_price_ids(client, stripe_shop, mocked_responses):
    mocked_responses.get(LINE_ITEMS_URL.format("cs_test_1"),
                         json=line_items(("prod_GOLD", "price_G1"), ("prod_OTHER", "price_SILVER")))
    response = post(client, stripe_shop.id, session_completed())
    assert response.status_code == 200 and response.json["status"] == "processed"
    assert mocked_responses.calls[0].request.headers["Authorization"] == "Bearer rk_test_123"
    [member] = members()
    assert member.email == "buyer@example.com"
    assert sorted((g.level.slug, g.order_ref) for g in grants()) == [("gold", "pi_cs_test_1"),
                                                                      ("silver", "pi_cs_test_1")]
    assert len(emails("welcome")) == 1
    # Redelivery of the same event id: a duplicate, no second fetch (the mock would fail on an unexpected call).
    assert post(client, stripe_shop.id, session_completed()).json["status"] == "duplicate"
    assert len(grants()) == 2


def test_unpaid_checkout_is_ignored_until_async_payment_succeeds(client, stripe_shop, mocked_responses):
    mocked_responses.get(LINE_ITEMS_URL.format("cs_test_2"), json=line_items(("prod_GOLD", "price_G1")))
    pending = post(client, stripe_shop.id, session_completed("cs_test_2", payment_status="unpaid"))
    assert pending.json["status"] == "ignored" and members() == []
    paid = session_completed("cs_test_2", event_id="evt_2")
    paid["type"] = "checkout.session.async_payment_succeeded"
    assert post(client, stripe_shop.id, paid).json["status"] == "processed"
    assert [g.level.slug for g in grants()] == ["gold"]


def test_stripe_api_failure_is_stored_as_failed_and_the_retry_processes_it(client, stripe_shop, mocked_responses):
    mocked_responses.get(LINE_ITEMS_URL.format("cs_test_3"), status=500,
                         json={"error": {"type": "api_error", "message": "boom"}})
    failed = post(client, stripe_shop.id, session_completed("cs_test_3"))
    assert failed.status_code == 500 and failed.json["code"] == "processing_failed"
    assert event(failed.json["event_id"]).status == "failed" and members() == []
    mocked_responses.get(LINE_ITEMS_URL.format("cs_test_3"), json=line_items(("prod_GOLD", "price_G1")))
    retry = post(client, stripe_shop.id, session_completed("cs_test_3"))
    assert retry.status_code == 200 and retry.json["status"] == "duplicate"
    assert event(failed.json["event_id"]).status == "processed"
    assert [g.level.slug for g in grants()] == ["gold"]


def test_without_an_api_key_the_order_needs_attention(client, stripe_shop, session):
    stripe_shop.api_key = None
    session.commit()
    response = post(client, stripe_shop.id, session_completed())
    assert response.json["status"] == "needs_attention" and "api_key" in event(response.json["event_id"]).last_error


@pytest.mark.parametrize("case", ["wrong_secret", "no_header", "stale", "future", "tampered", "garbage_header"])
def test_bad_signatures_are_401_and_nothing_is_stored(client, stripe_shop, case):
    payload = json.dumps(session_completed())
    kwargs: dict = {}
    if case == "wrong_secret":
        kwargs["secret"] = "whsec_other"
    elif case == "no_header":
        kwargs["header"] = ""
    elif case == "stale":
        kwargs["timestamp"] = int(time.time()) - 301
    elif case == "future":  # the SDK alone accepted a signature dated up to an hour ahead
        kwargs["timestamp"] = int(time.time()) + 301
    elif case == "tampered":
        kwargs["header"] = stripe.WebhookSignature.generate_signature_header(payload, SECRET)
        payload = payload.replace("Buyer@Example.com", "evil@example.com")
    else:
        kwargs["header"] = "nonsense"
    response = post(client, stripe_shop.id, payload, **kwargs)
    assert response.status_code == 401 and response.json["code"] in ("invalid_signature", "missing_signature",
                                                                    "signature_expired")
    assert event_count() == 0


def test_any_v1_may_match_and_the_previous_secret_works_during_rotation(client, stripe_shop, session,
                                                                        mocked_responses):
    mocked_responses.get(LINE_ITEMS_URL.format("cs_test_1"), json=line_items(("prod_GOLD", "price_G1")))
    body = json.dumps(session_completed())
    good = stripe.WebhookSignature.generate_signature_header(body, SECRET)
    stamp = good.split(",")[0]
    header = f"{stamp},v1={'0' * 64},{good.split(',')[1]}"
    assert post(client, stripe_shop.id, body, header=header).json["status"] == "processed"
    stripe_shop.secret, stripe_shop.previous_secret = "whsec_new_secret_000", SECRET
    stripe_shop.previous_secret_expires_at = timeutil.now() + timedelta(hours=1)
    session.commit()
    assert post(client, stripe_shop.id, stripe_event("customer.created", {"id": "cus_1"}, event_id="evt_9")
                ).json["status"] == "ignored"


def test_unparseable_body_after_a_valid_signature_is_400(client, stripe_shop):
    response = post(client, stripe_shop.id, "{not json")
    assert response.status_code == 400 and response.json["code"] == "unparseable_body"


def test_expanded_objects_are_read_by_their_id(client, stripe_shop, mocked_responses):
    mocked_responses.get(LINE_ITEMS_URL.format("cs_test_1"), json=line_items(("prod_GOLD", "price_G1")))
    payload = session_completed(payment_intent={"id": "pi_expanded", "object": "payment_intent"},
                                customer={"id": "cus_1", "object": "customer"})
    assert post(client, stripe_shop.id, payload).json["status"] == "processed"
    assert [(g.order_ref, g.level.slug) for g in grants()] == [("pi_expanded", "gold")]


@pytest.mark.parametrize("obj", [
    {"id": "cs_1", "payment_status": "paid", "customer_details": {"email": 5}},
    {"id": "cs_1", "payment_status": "paid", "customer_details": "buyer@example.com"},
    {"id": {"nested": True}, "payment_status": "paid", "customer_email": "buyer@example.com"},
])
def test_a_signed_session_with_fields_of_the_wrong_type_needs_attention(client, stripe_shop, obj):
    response = post(client, stripe_shop.id, stripe_event("checkout.session.completed", obj))
    assert response.status_code == 200 and response.json["status"] == "needs_attention"
    assert members() == []


def test_a_signed_invoice_with_a_subscription_of_the_wrong_type_changes_nothing(client, stripe_shop):
    payload = stripe_event("invoice.payment_failed", {"id": "in_1", "subscription": {"id": 1}})
    response = post(client, stripe_shop.id, payload)
    assert response.status_code == 200 and response.json["status"] == "ignored"


def paid_order(client, integration, mocked_responses, *, subscription: str | None = None):
    mocked_responses.get(LINE_ITEMS_URL.format("cs_test_1"), json=line_items(("prod_GOLD", "price_G1")))
    extra = {"subscription": subscription, "mode": "subscription"} if subscription else {}
    assert post(client, integration.id, session_completed(**extra)).json["status"] == "processed"


def test_full_refund_revokes_partial_refund_does_not(client, stripe_shop, mocked_responses):
    paid_order(client, stripe_shop, mocked_responses)
    partial = stripe_event("charge.refunded", {"id": "ch_1", "payment_intent": "pi_cs_test_1", "refunded": False},
                           event_id="evt_r1")
    assert post(client, stripe_shop.id, partial).json["status"] == "ignored"
    assert [g.status for g in grants()] == ["active"]
    full = stripe_event("charge.refunded", {"id": "ch_1", "payment_intent": "pi_cs_test_1", "refunded": True},
                        event_id="evt_r2")
    assert post(client, stripe_shop.id, full).json["status"] == "processed"
    assert [(g.status, g.revoke_reason) for g in grants()] == [("revoked", "refunded")]


def test_subscription_lifecycle_failed_paid_deleted(client, stripe_shop, mocked_responses):
    paid_order(client, stripe_shop, mocked_responses, subscription="sub_1")
    assert [g.subscription_ref for g in grants()] == ["sub_1"]
    failed = stripe_event("invoice.payment_failed", {"id": "in_2", "subscription": "sub_1",
                                                     "customer_email": "buyer@example.com",
                                                     "next_payment_attempt": None}, event_id="evt_f")
    assert post(client, stripe_shop.id, failed).json["status"] == "processed"
    assert [g.status for g in grants()] == ["past_due"] and len(emails("payment_failed")) == 1
    # Newer API versions put the subscription under parent.subscription_details.
    paid = stripe_event("invoice.paid", {"id": "in_2", "billing_reason": "subscription_cycle",
                                         "parent": {"subscription_details": {"subscription": "sub_1"}}},
                        event_id="evt_p")
    assert post(client, stripe_shop.id, paid).json["status"] == "processed"
    assert [g.status for g in grants()] == ["active"]
    first_invoice = stripe_event("invoice.paid", {"id": "in_1", "billing_reason": "subscription_create",
                                                  "subscription": "sub_1"}, event_id="evt_p0")
    assert post(client, stripe_shop.id, first_invoice).json["status"] == "ignored"
    deleted = stripe_event("customer.subscription.deleted", {"id": "sub_1", "object": "subscription"},
                           event_id="evt_d")
    assert post(client, stripe_shop.id, deleted).json["status"] == "processed"
    assert [(g.status, g.revoke_reason) for g in grants()] == [("revoked", "cancelled")]


def test_test_mode_stripe_events_grant_nothing_unless_accepted(client, stripe_shop):
    payload = session_completed()
    payload["livemode"] = False
    assert post(client, stripe_shop.id, payload).json["status"] == "ignored"
    assert members() == []
