"""The generic receiver: our documented JSON format, signed with X-Coursegate-Signature."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest

import timeutil
from fulfillment.signatures import sign_generic
from membership.grants import run_due_revocations
from tests.factories import make_course, make_integration, make_level, make_rule
from tests.fulfillment.helpers import emails, event_count, grants, members

SECRET = "cgwh_generic_secret_value"


@pytest.fixture
def generic_shop(session):
    course = make_course(slug="generic-course")
    level = make_level(slug="samcart-pro", courses=[course])
    bonus = make_level(slug="samcart-bonus", courses=[course])
    integration = make_integration(kind="generic", secret=SECRET, grace_days=3)
    make_rule(integration, "sc-100", [level])
    make_rule(integration, "sc-100", [bonus], item_type="bump")
    session.commit()
    return integration


def post(client, integration_id: int, payload, *, secret: str = SECRET, header: str | None = None,
         timestamp: int | None = None):
    body = (payload if isinstance(payload, str) else json.dumps(payload)).encode()
    if header is None:
        header = sign_generic(secret, body, timestamp)
    return client.post(f"/webhooks/generic/{integration_id}", data=body, content_type="application/json",
                       headers={"X-Coursegate-Signature": header})


ORDER = {"event": "order.completed", "id": "sc-evt-1", "order_id": "SC-1", "email": "Fan@Example.com",
         "name": "Sam Fan", "subscription_id": "SC-SUB-1",
         "items": [{"type": "product", "product_id": "sc-100", "pricing_option_id": "monthly"},
                   {"type": "bump", "product_id": "sc-100"}]}


def test_order_completed_then_every_other_event(client, generic_shop, session):
    response = post(client, generic_shop.id, ORDER)
    assert response.status_code == 200 and response.json["status"] == "processed"
    assert [m.email for m in members()] == ["fan@example.com"] and len(emails("welcome")) == 1
    assert sorted((g.line_ref, g.subscription_ref) for g in grants()) == [("bump-sc-100", "SC-SUB-1"),
                                                                         ("product-sc-100", "SC-SUB-1")]
    assert post(client, generic_shop.id, ORDER).json["status"] == "duplicate"

    refund = {"event": "line.refunded", "order_id": "SC-1", "item": {"type": "bump", "product_id": "sc-100"}}
    assert post(client, generic_shop.id, refund).json["status"] == "processed"
    assert {g.line_ref: g.status for g in grants()} == {"product-sc-100": "active", "bump-sc-100": "revoked"}

    assert post(client, generic_shop.id, {"event": "payment.failed", "subscription_id": "SC-SUB-1",
                                          "invoice_id": "INV-2"}).json["status"] == "processed"
    assert [g.status for g in grants(line_ref="product-sc-100")] == ["past_due"]
    assert "3 more day" in emails("payment_failed")[0].text_body
    assert post(client, generic_shop.id, {"event": "payment.succeeded", "subscription_id": "SC-SUB-1",
                                          "invoice_id": "INV-2"}).json["status"] == "processed"
    assert [g.status for g in grants(line_ref="product-sc-100")] == ["active"]
    for name, status in (("subscription.paused", "paused"), ("subscription.resumed", "active")):
        assert post(client, generic_shop.id, {"event": name, "id": f"sc-{name}", "subscription_id": "SC-SUB-1"}
                    ).json["status"] == "processed"
        assert [g.status for g in grants(line_ref="product-sc-100")] == [status]

    period_end = (timeutil.now() + timedelta(days=10)).replace(microsecond=0)
    cancel = {"event": "subscription.cancelled", "subscription_id": "SC-SUB-1", "period_end": period_end.isoformat()}
    assert post(client, generic_shop.id, cancel).json["status"] == "processed"
    [grant] = grants(line_ref="product-sc-100")
    assert grant.status == "active" and grant.revoke_at == period_end
    with timeutil.frozen(period_end + timedelta(seconds=1)):
        assert run_due_revocations(session) == 1


@pytest.mark.parametrize("case", ["wrong_secret", "missing", "stale", "future", "malformed", "tampered"])
def test_signature_negatives(client, generic_shop, case):
    body = json.dumps(ORDER)
    kwargs: dict = {}
    if case == "wrong_secret":
        kwargs["secret"] = "other-secret"
    elif case == "missing":
        kwargs["header"] = ""
    elif case == "stale":
        kwargs["timestamp"] = int(time.time()) - 301
    elif case == "future":
        kwargs["timestamp"] = int(time.time()) + 301
    elif case == "malformed":
        kwargs["header"] = "sha256=abc"
    else:
        kwargs["header"] = sign_generic(SECRET, body.encode())
        body = body.replace("sc-100", "sc-999")
    response = post(client, generic_shop.id, body, **kwargs)
    assert response.status_code == 401 and response.json["code"] in (
        "invalid_signature", "missing_signature", "signature_expired")
    assert event_count() == 0


def test_several_v1_values_and_previous_secret(client, generic_shop, session):
    body = json.dumps(ORDER).encode()
    stamp = int(time.time())
    good = sign_generic(SECRET, body, stamp).split(",")[1]
    header = f"t={stamp},v1={'ab' * 32},{good}"
    assert post(client, generic_shop.id, body.decode(), header=header).json["status"] == "processed"
    generic_shop.secret, generic_shop.previous_secret = "brand-new-secret", SECRET
    session.commit()
    other = {**ORDER, "id": "sc-evt-2", "order_id": "SC-2"}
    assert post(client, generic_shop.id, other).json["status"] == "processed"


def test_integration_without_secret_refuses(client, session, generic_shop):
    open_integration = make_integration(kind="generic", secret=None)
    session.commit()
    response = post(client, open_integration.id, ORDER)
    assert response.status_code == 401 and response.json["code"] == "no_secret_configured"


@pytest.mark.parametrize("payload,field", [
    ({"event": "order.shipped"}, "event"),
    ({"event": "order.completed", "order_id": "1", "items": [{"product_id": "x"}]}, "email"),
    ({"event": "order.completed", "order_id": "1", "email": "a@example.com", "items": []}, "items"),
    ({"event": "order.completed", "order_id": "1", "email": "a@example.com", "items": [{"type": "gift",
                                                                                        "product_id": "x"}]}, "items"),
    ({"event": "line.refunded"}, "order_id"),
    ({"event": "payment.failed"}, "subscription_id"),
    ({"event": "payment.succeeded", "subscription_id": "s"}, "invoice_id"),
    ({"event": "subscription.paused", "subscription_id": "s"}, "id"),
    ({"event": "subscription.cancelled", "subscription_id": "s", "period_end": "2030-01-01T00:00:00"}, "period_end"),
])
def test_bodies_that_do_not_follow_the_format_are_422_with_the_fields(client, generic_shop, payload, field):
    response = post(client, generic_shop.id, payload)
    assert response.status_code == 422 and response.json["code"] == "invalid_payload"
    assert field in response.json["errors"]
    assert event_count() == 0


@pytest.mark.parametrize("body", ["{oops", "[]", "null"])
def test_unparseable_json_is_400(client, generic_shop, body):
    response = post(client, generic_shop.id, body)
    assert response.status_code == 400 and response.json["code"] == "unparseable_body"


def test_the_format_is_in_the_openapi_spec(client):
    spec = client.get("/api/v1/openapi.json").json
    schema = spec["components"]["schemas"]["GenericWebhookEvent"]
    assert schema["properties"]["event"]["enum"] == ["order.completed", "line.refunded", "subscription.cancelled",
                                                     "payment.failed", "payment.succeeded", "subscription.paused",
                                                     "subscription.resumed"]
    post_op = spec["paths"]["/webhooks/generic/{integration_id}"]["post"]
    assert "X-Coursegate-Signature" in post_op["description"]
    assert post_op["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith("GenericWebhookEvent")
    assert "head" in spec["paths"]["/webhooks/thrivecart/{integration_id}"]
    assert "/webhooks/stripe/{integration_id}" in spec["paths"]
    from openapi_spec_validator import validate

    validate(spec)
