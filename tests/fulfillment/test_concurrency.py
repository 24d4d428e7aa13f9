"""Real concurrency on PostgreSQL: simultaneous deliveries through a live HTTP server (threads, own connections)."""

from __future__ import annotations

import threading

import pytest
import requests

from tests.fulfillment.helpers import emails, encode, grants, members, order

pytestmark = pytest.mark.postgres


def post_together(url: str, bodies: list[tuple[bytes, str]]) -> list[requests.Response]:
    """Send every body at the same moment, each from its own thread and connection."""
    barrier = threading.Barrier(len(bodies))
    results: list = [None] * len(bodies)

    def send(i: int, body: bytes, content_type: str) -> None:
        barrier.wait()
        results[i] = requests.post(url, data=body, headers={"Content-Type": content_type}, timeout=30)

    threads = [threading.Thread(target=send, args=(i, *body)) for i, body in enumerate(bodies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_two_orders_for_one_new_email_at_once_make_one_member_one_welcome_and_both_grants(live_server, shop,
                                                                                          session):
    # Failure mode 2, repeated so the two transactions really overlap.
    url = f"{live_server}/webhooks/thrivecart/{shop.id}"
    for n in range(8):
        email = f"racer{n}@example.com"
        first = encode(order(order_id=f"A{n}", email=email, items=["product-12"], live=True), "form")
        second = encode(order(order_id=f"B{n}", email=email.upper(), items=["upsell-3"], live=True), "json")
        responses = post_together(url, [first, second])
        assert [r.status_code for r in responses] == [200, 200]
        assert [r.json()["status"] for r in responses] == ["processed", "processed"]
    session.expire_all()
    assert len(members()) == 8
    for member in members():
        assert sorted(g.line_ref for g in grants(member_id=member.id)) == ["product-12", "upsell-3"]
    welcomes = emails("welcome")
    assert sorted(e.recipient for e in welcomes) == sorted(m.email for m in members())


def test_the_same_delivery_twice_at_once_is_processed_once(live_server, shop, session):
    url = f"{live_server}/webhooks/thrivecart/{shop.id}"
    for n in range(5):
        body = encode(order(order_id=f"C{n}", email=f"twice{n}@example.com", items=["product-12", "bump-12"],
                            live=True), "form")
        responses = post_together(url, [body, body, body])
        assert sorted(r.json()["status"] for r in responses) == ["duplicate", "duplicate", "processed"]
    session.expire_all()
    assert len(members()) == 5 and len(grants()) == 10 and len(emails("welcome")) == 5


def test_a_refund_arriving_with_its_order_is_never_lost(live_server, shop, session):
    from tests.fulfillment.test_thrivecart import refund

    url = f"{live_server}/webhooks/thrivecart/{shop.id}"
    for n in range(8):
        purchase = encode(order(order_id=f"R{n}", email=f"refund{n}@example.com", items=["product-12", "bump-12"],
                                live=True), "form")
        refund_tree = refund(f"R{n}", "bump", "12")
        refund_tree["mode"], refund_tree["mode_int"] = "live", "2"
        responses = post_together(url, [purchase, encode(refund_tree, "json")])
        assert [r.json()["status"] for r in responses] == ["processed", "processed"]
    session.expire_all()
    active = sorted((g.order_ref, g.line_ref) for g in grants() if g.status == "active")
    assert active == [(f"R{n}", "product-12") for n in range(8)]
