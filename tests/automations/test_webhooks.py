"""Outgoing webhooks against a real local HTTP receiver: signing, retries with backoff, redelivery."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import requests
from sqlalchemy import select

import timeutil
from automations import webhooks
from automations.models import WebhookDelivery
from automations.triggers import fire
from extensions import db
from tests import factories
from tests.automations.helpers import make_rule

SECRET = "whsec-test-0123456789abcdef"


def _endpoint(session, url, events=("*",)):
    endpoint = webhooks.create_endpoint(session, {"url": url, "secret": SECRET, "events": list(events)})
    session.commit()
    return endpoint


def test_endpoint_api_shows_the_secret_once_and_validates(api, receiver):
    created = api.post("/api/v1/webhook-endpoints", json={"url": receiver.url, "events": ["order_completed"],
                                                          "description": "Keap"})
    assert created.status_code == 201
    assert created.json["secret"].startswith("cgwhsec_") and created.json["events"] == ["order_completed"]
    shown = api.get(f"/api/v1/webhook-endpoints/{created.json['id']}").json
    assert "secret" not in shown and shown["description"] == "Keap"
    assert all("secret" not in e for e in api.get("/api/v1/webhook-endpoints").json)
    bad_url = api.post("/api/v1/webhook-endpoints", json={"url": "ftp://example.com/x"})
    assert bad_url.status_code == 422 and bad_url.json["code"] == "invalid_webhook_url"
    assert api.post("/api/v1/webhook-endpoints", json={"url": "/relative"}).status_code == 422
    for garbled in ("https://[", "https://T/K<e", "https://h\u0010st.example/", "https://hooks.example.com/a b"):
        refused = api.post("/api/v1/webhook-endpoints", json={"url": garbled})
        assert refused.status_code == 422 and refused.json["code"] == "invalid_webhook_url", garbled
    bad_events = api.post("/api/v1/webhook-endpoints", json={"url": receiver.url, "events": ["order_shipped"]})
    assert bad_events.json["code"] == "invalid_webhook_events"
    assert api.post("/api/v1/webhook-endpoints", json={"url": receiver.url, "secret": "short"}).status_code == 422
    patched = api.patch(f"/api/v1/webhook-endpoints/{created.json['id']}", json={"enabled": False})
    assert patched.json["enabled"] is False
    assert api.delete(f"/api/v1/webhook-endpoints/{created.json['id']}").status_code == 204
    assert api.get(f"/api/v1/webhook-endpoints/{created.json['id']}").json["code"] == "webhook_endpoint_not_found"


def test_an_event_is_delivered_signed_after_commit(session, receiver):
    endpoint = _endpoint(session, receiver.url, events=["order_completed", "tag_added"])
    _endpoint(session, receiver.url.replace("/crm", "/other"), events=["line_refunded"])
    member = factories.make_member(email="buyer@example.com", name="Bea")
    level = factories.make_level(slug="gold")

    fire(session, "order_completed", member=member, event_key="webhook:1:line:product-12", level=level,
         product_id="12", integration_id=None, context={"order_id": "o-1"})
    assert receiver.requests == []  # nothing leaves before the commit
    session.commit()

    got = receiver.wait_for(2)
    assert [json.loads(r["body"])["type"] for r in got] == ["tag_added", "order_completed"]
    order = next(r for r in got if json.loads(r["body"])["type"] == "order_completed")
    body = json.loads(order["body"])
    assert order["path"] == "/hooks/crm"
    assert body["data"]["member"]["email"] == "buyer@example.com"
    assert body["data"]["level"]["slug"] == "gold" and body["data"]["product_id"] == "12"
    assert body["data"]["context"] == {"order_id": "o-1"}
    assert "purchased-12" in body["data"]["member"]["tags"]
    assert order["headers"]["X-Coursegate-Event"] == "order_completed"

    header = order["headers"]["X-Coursegate-Signature"]
    assert webhooks.verify(SECRET, header, order["body"])
    assert not webhooks.verify("another-secret", header, order["body"])
    assert not webhooks.verify(SECRET, header, order["body"] + b" ")
    timestamp = int(header.split(",")[0][2:])
    assert abs(timestamp - time.time()) < 60
    import hashlib
    import hmac

    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + order["body"], hashlib.sha256).hexdigest()
    assert header == f"t={timestamp},v1={expected}"
    assert not webhooks.verify(SECRET, header, order["body"], now=timestamp + 301)

    deliveries = session.scalars(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)).all()
    assert {d.status for d in deliveries} == {"delivered"}
    assert all(d.attempt_count == 1 for d in deliveries)


def test_failures_are_retried_with_backoff_and_attempts_are_visible(app, api, receiver):
    receiver.statuses = [500, 503]
    start = datetime(2027, 1, 10, 12, 0, tzinfo=UTC)
    with app.app_context(), timeutil.frozen(start) as clock:
        endpoint = _endpoint(db.session, receiver.url, events=["card_updated"])
        member = factories.make_member()
        fire(db.session, "card_updated", member=member, event_key="k1")
        db.session.commit()
        delivery = db.session.scalar(select(WebhookDelivery))
        assert delivery.status == "pending" and delivery.attempt_count == 1
        assert delivery.next_attempt_at == start + timedelta(seconds=30)
        assert delivery.last_status_code == 500

        clock[0] = start + timedelta(seconds=29)
        assert webhooks.sweep_due() == 0
        clock[0] = start + timedelta(seconds=30)
        assert webhooks.sweep_due() == 1
        db.session.refresh(delivery)
        assert delivery.status == "pending" and delivery.next_attempt_at == clock[0] + timedelta(seconds=60)

        clock[0] += timedelta(seconds=60)
        assert webhooks.sweep_due() == 1
        db.session.refresh(delivery)
        assert delivery.status == "delivered" and delivery.attempt_count == 3
        ids = (endpoint.id, delivery.id)
    assert len(receiver.requests) == 3
    assert len({r["body"] for r in receiver.requests}) == 1  # the same bytes every time
    stamps = [int(r["headers"]["X-Coursegate-Signature"].split(",")[0][2:]) for r in receiver.requests]
    assert stamps == [int(start.timestamp()), int(start.timestamp()) + 30, int(start.timestamp()) + 90]
    for r, stamp in zip(receiver.requests, stamps):
        assert webhooks.verify(SECRET, r["headers"]["X-Coursegate-Signature"], r["body"], now=stamp)

    detail = api.get(f"/api/v1/webhook-endpoints/{ids[0]}/deliveries/{ids[1]}").json
    assert [a["status_code"] for a in detail["attempts"]] == [500, 503, 200]
    assert detail["attempts"][0]["error"].startswith("HTTP 500")
    assert detail["status"] == "delivered" and json.loads(detail["body"])["type"] == "card_updated"
    listing = api.get(f"/api/v1/webhook-endpoints/{ids[0]}/deliveries?status=delivered").json
    assert [d["id"] for d in listing] == [ids[1]]
    assert api.get(f"/api/v1/webhook-endpoints/{ids[0]}/deliveries/999").json["code"] == "webhook_delivery_not_found"


def test_a_dead_endpoint_is_given_up_after_three_days(session):
    dead = "http://127.0.0.1:9/nothing-listens-here"
    start = datetime(2027, 2, 1, tzinfo=UTC)
    with timeutil.frozen(start) as clock:
        _endpoint(session, dead)
        fire(session, "card_updated", member=factories.make_member(), event_key="k1")
        session.commit()
        delivery = session.scalar(select(WebhookDelivery))
        delivery_id = delivery.id
        for _ in range(100):
            row = db.session.get(WebhookDelivery, delivery_id)
            if row.status != "pending":
                break
            clock[0] = row.next_attempt_at
            webhooks.sweep_due()
            db.session.expire_all()
        row = db.session.get(WebhookDelivery, delivery_id)
        assert row.status == "failed" and row.next_attempt_at is None
        assert "ConnectionError" in row.last_error
        last = row.attempts[-1].attempted_at
        assert start + timedelta(days=2) < last <= start + timedelta(days=3)
        assert 15 <= row.attempt_count <= 30
        gaps = [b.attempted_at - a.attempted_at for a, b in zip(row.attempts, row.attempts[1:])]
        assert gaps[:3] == [timedelta(seconds=30), timedelta(seconds=60), timedelta(seconds=120)]
        assert max(gaps) == timedelta(hours=6)


def test_redeliver_sends_the_same_event_again(app, api, receiver):
    with app.app_context():
        endpoint = _endpoint(db.session, receiver.url)
        fire(db.session, "payment_recovered", member=factories.make_member(), event_key="k1")
        db.session.commit()
        delivery_ids = db.session.scalars(select(WebhookDelivery.id).order_by(WebhookDelivery.id)).all()
        endpoint_id = endpoint.id
    receiver.wait_for(len(delivery_ids))
    first = delivery_ids[-1]
    before = len(receiver.requests)
    again = api.post(f"/api/v1/webhook-endpoints/{endpoint_id}/deliveries/{first}/redeliver")
    assert again.status_code == 202
    again.close()  # the job runs once the response is closed, as a real server does after sending it
    assert again.json["redelivery_of"] == first and again.json["id"] != first
    got = receiver.wait_for(before + 1)
    original = next(r for r in got if r["headers"]["X-Coursegate-Delivery"] == str(first))
    replay = got[-1]
    assert replay["headers"]["X-Coursegate-Delivery"] == str(again.json["id"])
    assert json.loads(replay["body"])["id"] == json.loads(original["body"])["id"]
    assert webhooks.verify(SECRET, replay["headers"]["X-Coursegate-Signature"], replay["body"])
    shown = api.get(f"/api/v1/webhook-endpoints/{endpoint_id}/deliveries/{again.json['id']}").json
    assert shown["status"] == "delivered"
    assert api.post(f"/api/v1/webhook-endpoints/{endpoint_id}/deliveries/424242/redeliver").status_code == 404


def test_send_webhook_action_posts_to_its_endpoint(session, receiver):
    endpoint = _endpoint(session, receiver.url, events=["line_refunded"])  # not subscribed to orders
    make_rule("order_completed", [{"type": "send_webhook", "endpoint_id": endpoint.id}], name="tell the CRM")
    fire(session, "order_completed", member=factories.make_member(), event_key="o1", product_id="3")
    session.commit()
    (request,) = receiver.wait_for(1)
    body = json.loads(request["body"])
    assert body["type"] == "order_completed" and body["rule"]["name"] == "tell the CRM"


def test_a_slow_endpoint_never_slows_the_request_that_fired(app, api_key, receiver, live_server):
    receiver.delay = 1.5
    with app.app_context():
        _endpoint(db.session, receiver.url, events=["tag_added"])
        member = factories.make_member()
        db.session.commit()
        member_id = member.id
    started = time.monotonic()
    response = requests.post(f"{live_server}/api/v1/members/{member_id}/tags", json={"name": "vip"},
                             headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
    elapsed = time.monotonic() - started
    assert response.status_code == 201
    assert elapsed < 1.0
    assert len(receiver.wait_for(1, timeout=5)) == 1


def test_sweep_cli_sends_what_is_due(app, runner, receiver):
    with app.app_context():
        endpoint = _endpoint(db.session, receiver.url)
        # A delivery whose trigger was lost (say the broker was down): only the sweep will send it.
        delivery = WebhookDelivery(endpoint_id=endpoint.id, event_type="card_updated", body='{"id":"evt_x"}',
                                   next_attempt_at=timeutil.now())
        db.session.add(delivery)
        db.session.commit()
        delivery_id = delivery.id
    result = runner.invoke(args=["automations", "sweep-webhooks"])
    assert "Tried 1 webhook delivery(ies)." in result.output
    assert receiver.wait_for(1)[0]["body"] == b'{"id":"evt_x"}'
    with app.app_context():
        assert db.session.get(WebhookDelivery, delivery_id).status == "delivered"


def test_deleting_an_endpoint_deletes_its_deliveries(app, api, receiver):
    with app.app_context():
        endpoint = _endpoint(db.session, receiver.url)
        fire(db.session, "card_updated", member=factories.make_member(), event_key="k1")
        db.session.commit()
        endpoint_id = endpoint.id
        assert db.session.scalar(select(db.func.count(WebhookDelivery.id))) == 2
    receiver.wait_for(2)
    assert api.delete(f"/api/v1/webhook-endpoints/{endpoint_id}").status_code == 204
    with app.app_context():
        assert db.session.scalar(select(db.func.count(WebhookDelivery.id))) == 0
