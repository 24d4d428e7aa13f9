"""The group-commit receiver: many deliveries fulfilled in one transaction, set-based, each answered alone."""

from __future__ import annotations

import threading
import time

import requests
import stripe
from sqlalchemy import select

import observability
from automations.models import AutomationEvent
from fulfillment import batches, parsers, services
from fulfillment.models import Integration, WebhookEvent
from membership.tags import MemberTag, Tag
from tests.factories import make_integration, make_rule
from tests.fulfillment.helpers import emails, encode, event, grants, members, order
from tests.fulfillment.test_thrivecart import refund
from tests.helpers import statements_sent


def delivery(session, integration_id: int, tree: dict, encoding: str = "form") -> services.Delivery:
    """A ThriveCart delivery as the receiver hands it to the batch: parsed, its secret stripped."""
    body, content_type = encode(tree, encoding)
    integration = session.get(Integration, integration_id)
    event = parsers.thrivecart_event(parsers.decode_thrivecart(body, content_type))
    return services.Delivery(integration, event, body.decode(), content_type, {})


def statements(session, work) -> tuple[int, object]:
    with statements_sent(session) as seen:
        result = work()
    return len(seen), result


def new_buyers(session, shop, prefix: str, n: int) -> list[services.Delivery]:
    return [delivery(session, shop.id, order(order_id=f"{prefix}{i}", email=f"{prefix}{i}@example.com",
                                             items=["product-12", "bump-12"], live=True)) for i in range(n)]


def test_a_batch_of_new_buyers_costs_the_statements_of_one_and_gives_each_their_own(session, shop):
    services.receive_many(session, new_buyers(session, shop, "warm", 1))  # the default automations appear
    session.commit()
    alone, _ = statements(session, lambda: services.receive_many(session, new_buyers(session, shop, "one", 1)))
    session.commit()
    batch = new_buyers(session, shop, "many", 8)
    together, rows = statements(session, lambda: services.receive_many(session, batch))
    session.commit()
    # One statement per step for the whole batch (on PostgreSQL one more: the orders' locks, taken together).
    assert together <= alone + 1
    assert [row.status for row in rows] == ["processed"] * 8
    assert len({row.id for row in rows}) == 8
    session.expire_all()  # as stored (all outcomes are written in one statement)
    stored = session.scalars(select(WebhookEvent).where(WebhookEvent.id.in_([row.id for row in rows]))).all()
    assert [(e.status, e.attempts, e.last_error) for e in stored] == [("processed", 1, None)] * 8
    assert all(e.processed_at is not None and e.processed_at >= e.received_at for e in stored)
    buyers = [m for m in members() if m.email.startswith("many")]
    assert sorted(m.email for m in buyers) == [f"many{i}@example.com" for i in range(8)]
    for member in buyers:
        assert sorted(g.line_ref for g in grants(member_id=member.id)) == ["bump-12", "product-12"]
        assert [e.recipient for e in emails("welcome") if e.member_id == member.id] == [member.email]
        tagged = session.scalars(select(Tag.name).join(MemberTag).where(MemberTag.member_id == member.id)).all()
        assert tagged == ["purchased-12"]
    completed = session.scalars(select(AutomationEvent.event_key).where(
        AutomationEvent.trigger == "order_completed", AutomationEvent.event_key.like("order:%:many%"))).all()
    assert len(completed) == 16  # each bought item of each order, once


def test_deliveries_about_the_same_order_or_buyer_in_one_batch_apply_in_arrival_order(session, shop):
    first = order(order_id="S1", email="same@example.com", items=["product-12", "bump-12"], live=True)
    bump_refund = refund("S1", "bump", "12", mode="live", mode_int="2")
    second = order(order_id="S2", email="SAME@example.com", items=["upsell-3"], live=True)
    other = order(order_id="S3", email="other@example.com", items=["product-12"], live=True)
    batch = [delivery(session, shop.id, first), delivery(session, shop.id, bump_refund, "json"),
             delivery(session, shop.id, second), delivery(session, shop.id, first),
             delivery(session, shop.id, other)]
    rows = services.receive_many(session, batch)
    session.commit()
    assert [row.status for row in rows] == ["processed", "processed", "processed", "duplicate", "processed"]
    assert rows[3].duplicate_of_id == rows[0].id
    assert sorted(m.email for m in members()) == ["other@example.com", "same@example.com"]
    same = next(m for m in members() if m.email == "same@example.com")
    held = {(g.order_ref, g.line_ref): g.status for g in grants(member_id=same.id)}
    assert held == {("S1", "product-12"): "active", ("S1", "bump-12"): "revoked", ("S2", "upsell-3"): "active"}
    assert sorted(e.recipient for e in emails("welcome")) == ["other@example.com", "same@example.com"]


STRIPE_SECRET = "whsec_batch_secret_0123456789"
LINE_ITEMS = "https://api.stripe.com/v1/checkout/sessions/{}/line_items"


def stripe_order(session_id: str, event_id: str) -> tuple[bytes, dict]:
    import json

    body = json.dumps({"id": event_id, "object": "event", "type": "checkout.session.completed", "livemode": True,
                       "created": int(time.time()), "data": {"object": {
                           "id": session_id, "object": "checkout.session", "payment_status": "paid",
                           "customer_details": {"email": f"{session_id}@example.com", "name": "Stripe Buyer"},
                           "payment_intent": f"pi_{session_id}", "subscription": None, "mode": "payment"}}})
    return body.encode(), {"Content-Type": "application/json", "Stripe-Signature":
                           stripe.WebhookSignature.generate_signature_header(body, STRIPE_SECRET)}


def test_a_busy_process_batches_and_one_bad_delivery_fails_alone(live_server, app, shop, session,
                                                                  mocked_responses):
    stripe_cart = make_integration(kind="stripe", secret=STRIPE_SECRET, api_key="rk_test_batch")
    make_rule(stripe_cart, "prod_GOLD", [shop.levels["pro"]])
    session.commit()
    items = {"object": "list", "url": "/v1/checkout/sessions/cs/line_items", "has_more": False,
             "data": [{"id": "li_1", "object": "item", "description": "Gold", "quantity": 1,
                       "price": {"id": "price_G", "object": "price", "product": "prod_GOLD"}}]}
    entered, release = threading.Event(), threading.Event()

    def slow(request):  # the first delivery's leader waits here while the others gather
        entered.set()
        assert release.wait(30)
        return 200, {}, __import__("json").dumps(items)

    mocked_responses.add_passthru(live_server)  # our own server is real; only Stripe's API is mocked
    mocked_responses.add_callback("GET", LINE_ITEMS.format("cs_slow"), callback=slow)
    mocked_responses.add("GET", LINE_ITEMS.format("cs_bad"), status=500,
                         json={"error": {"type": "api_error", "message": "boom"}})
    receiver = batches.batcher(app)
    sizes = observability.FULFILMENT_BATCH_SIZE.collect()[0]
    before = {s.name: s.value for s in sizes.samples if s.name.endswith(("_sum", "_count"))}
    answers: dict[str, requests.Response] = {}

    def send(name: str, path: str, body: bytes, headers: dict) -> None:
        answers[name] = requests.post(f"{live_server}{path}", data=body, headers=headers, timeout=60)

    slow_body, slow_headers = stripe_order("cs_slow", "evt_slow")
    first = threading.Thread(target=send, args=("slow", f"/webhooks/stripe/{stripe_cart.id}", slow_body,
                                                 slow_headers))
    first.start()
    assert entered.wait(10), "the first delivery should be fulfilling by now"
    others = []
    for i in range(5):
        body, content_type = encode(order(order_id=f"B{i}", email=f"busy{i}@example.com", items=["product-12"],
                                          live=True), "form")
        others.append(threading.Thread(target=send, args=(f"busy{i}", f"/webhooks/thrivecart/{shop.id}", body,
                                                          {"Content-Type": content_type})))
    bad_body, bad_headers = stripe_order("cs_bad", "evt_bad")
    others.append(threading.Thread(target=send, args=("bad", f"/webhooks/stripe/{stripe_cart.id}", bad_body,
                                                       bad_headers)))
    for thread in others:
        thread.start()
    deadline = time.monotonic() + 10
    while receiver.waiting() < 6 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert receiver.waiting() == 6
    release.set()
    for thread in [first, *others]:
        thread.join(timeout=60)

    assert answers["slow"].status_code == 200 and answers["slow"].json()["status"] == "processed"
    for i in range(5):
        assert answers[f"busy{i}"].status_code == 200 and answers[f"busy{i}"].json()["status"] == "processed"
    assert answers["bad"].status_code == 500 and answers["bad"].json()["code"] == "processing_failed"
    assert event(answers["bad"].json()["event_id"]).status == "failed"
    assert len({a.json()["event_id"] for a in answers.values()}) == 7
    session.expire_all()
    assert sorted(m.email for m in members()) == sorted(
        ["cs_slow@example.com"] + [f"busy{i}@example.com" for i in range(5)])
    assert len(emails("welcome")) == 6
    after = {s.name: s.value for s in observability.FULFILMENT_BATCH_SIZE.collect()[0].samples
             if s.name.endswith(("_sum", "_count"))}
    # A batch of one (the slow delivery), then the six that gathered meanwhile in one batch (which failed and
    # was received again one by one).
    assert after["coursegate_fulfilment_batch_size_count"] - before["coursegate_fulfilment_batch_size_count"] == 2
    assert after["coursegate_fulfilment_batch_size_sum"] - before["coursegate_fulfilment_batch_size_sum"] == 7


def test_a_delivery_alone_is_a_batch_of_one_and_waits_for_nobody(client, app, shop):
    before = observability.FULFILMENT_BATCH_SIZE.collect()[0]
    count = next(s.value for s in before.samples if s.name.endswith("_count"))
    body, content_type = encode(order(order_id="A1", email="alone@example.com", items=["product-12"], live=True),
                                "form")
    answer = client.post(f"/webhooks/thrivecart/{shop.id}", data=body, content_type=content_type)
    assert answer.status_code == 200 and answer.json["status"] == "processed"
    after = observability.FULFILMENT_BATCH_SIZE.collect()[0]
    assert next(s.value for s in after.samples if s.name.endswith("_count")) == count + 1
    assert batches.batcher(app).waiting() == 0


# --- how long a leader gathers (the batcher alone, its fulfilment replaced by one that records each batch) -------

class _NoSession:
    def __contains__(self, _):
        return False

    def rollback(self):
        pass


class _Delivery:
    integration = None


def _recording_batches(monkeypatch, hold: threading.Event | None = None):
    sizes: list[int] = []

    def fulfil(session, batch):
        sizes.append(len(batch))
        if hold is not None and len(sizes) == 1:
            assert hold.wait(10)
        for number, item in enumerate(batch):
            batches._settle(item, answer=batches.Answer("processed", number))

    monkeypatch.setattr(batches, "_fulfil", fulfil)
    return sizes


def _submit(app, receiver: batches.Batcher) -> threading.Thread:
    def run():
        with app.app_context():
            receiver.fulfil(_NoSession(), _Delivery())

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_a_busy_process_waits_for_the_deliveries_its_last_batch_answered(app, monkeypatch):
    """Under load the requests a batch answered come back a moment apart. The next leader waits (a few ms at
    most) for as many as the process held when the last batch ended, rather than leading the first one back
    alone and the rest in a batch of their own."""
    hold = threading.Event()
    sizes = _recording_batches(monkeypatch, hold)
    receiver = batches.Batcher()
    threads = [_submit(app, receiver)]  # leads alone; its batch is held open
    deadline = time.monotonic() + 10
    while sizes != [1] and time.monotonic() < deadline:
        time.sleep(0.001)
    threads += [_submit(app, receiver) for _ in range(3)]  # arrive during it: the process holds 4
    while receiver.waiting() < 3 and time.monotonic() < deadline:
        time.sleep(0.001)
    hold.set()
    time.sleep(batches.LINGER_SECONDS / 5)  # the fourth comes back a moment later
    threads.append(_submit(app, receiver))
    for thread in threads:
        thread.join(10)
    assert sizes == [1, 4]


def test_an_idle_process_never_waits(app, monkeypatch):
    sizes = _recording_batches(monkeypatch)
    receiver = batches.Batcher()
    waits = []
    original = receiver._arrived.wait
    monkeypatch.setattr(receiver._arrived, "wait", lambda timeout=None: waits.append(timeout) or original(timeout))
    _submit(app, receiver).join(10)
    _submit(app, receiver).join(10)  # one after another: the last batch held one delivery, so none is expected
    time.sleep(batches.BUSY_SECONDS * 1.5)
    _submit(app, receiver).join(10)  # and after a pause, whatever the last batch held
    assert sizes == [1, 1, 1] and waits == []
