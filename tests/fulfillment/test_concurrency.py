"""Real concurrency on PostgreSQL: simultaneous deliveries through live HTTP servers (threads, own connections).

Each test runs twice: every delivery to one process, whose group-commit receiver may fulfil them in one batch
(``fulfillment.batches``), and the deliveries spread over two processes (two apps, two receivers), whose
transactions race and are kept apart by the database (unique keys, advisory locks)."""

from __future__ import annotations

import threading

import pytest
import requests

from tests.fulfillment.helpers import emails, encode, grants, members, order

pytestmark = pytest.mark.postgres


@pytest.fixture(params=["one process", "two processes"])
def servers(request, live_server, make_app):
    """Base URLs to send the deliveries of one round to, in turn."""
    if request.param == "one process":
        return [live_server]
    from werkzeug.serving import make_server

    from tests.conftest import free_port

    port = free_port()
    server = make_server("127.0.0.1", port, make_app(), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    request.addfinalizer(lambda: (server.shutdown(), thread.join(timeout=5)))
    return [live_server, f"http://127.0.0.1:{port}"]


def post_together(url: str | list[str], bodies: list[tuple[bytes, str]]) -> list[requests.Response]:
    """Send every body at the same moment, each from its own thread and connection (to the URLs in turn)."""
    urls = [url] if isinstance(url, str) else url
    barrier = threading.Barrier(len(bodies))
    results: list = [None] * len(bodies)

    def send(i: int, body: bytes, content_type: str) -> None:
        barrier.wait()
        results[i] = requests.post(urls[i % len(urls)], data=body, headers={"Content-Type": content_type},
                                   timeout=30)

    threads = [threading.Thread(target=send, args=(i, *body)) for i, body in enumerate(bodies)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_two_orders_for_one_new_email_at_once_make_one_member_one_welcome_and_both_grants(servers, shop,
                                                                                          session):
    # Failure mode 2, repeated so the two transactions really overlap.
    url = [f"{base}/webhooks/thrivecart/{shop.id}" for base in servers]
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


def test_the_same_delivery_twice_at_once_is_processed_once(servers, shop, session):
    url = [f"{base}/webhooks/thrivecart/{shop.id}" for base in servers]
    for n in range(5):
        body = encode(order(order_id=f"C{n}", email=f"twice{n}@example.com", items=["product-12", "bump-12"],
                            live=True), "form")
        responses = post_together(url, [body, body, body])
        assert sorted(r.json()["status"] for r in responses) == ["duplicate", "duplicate", "processed"]
    session.expire_all()
    assert len(members()) == 5 and len(grants()) == 10 and len(emails("welcome")) == 5


def test_a_refund_arriving_with_its_order_is_never_lost(servers, shop, session):
    from tests.fulfillment.test_thrivecart import refund

    url = [f"{base}/webhooks/thrivecart/{shop.id}" for base in servers]
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
