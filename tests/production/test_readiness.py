"""/readyz against a real gunicorn process when PostgreSQL goes away and comes back."""

import threading
import time
from collections import Counter
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from sqlalchemy import select

from fulfillment.models import WebhookEvent
from tests.fulfillment.helpers import encode, order

from tests.production.processes import service_env, start_gunicorn, stop, wait_until
from tests.production.tcp_proxy import TcpProxy

pytestmark = pytest.mark.postgres


@pytest.fixture
def proxied_database(database_url):
    parts = urlsplit(database_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    netloc = f"{parts.username}@127.0.0.1:{proxy.port}" if parts.username else f"127.0.0.1:{proxy.port}"
    yield proxy, urlunsplit(parts._replace(netloc=netloc)).replace("postgresql+psycopg://", "postgresql://")
    proxy.close()


def test_readyz_follows_the_database(app, proxied_database, tmp_path):
    proxy, url = proxied_database
    base, proc = start_gunicorn(service_env(DATABASE_URL=url), workers=2, log=tmp_path / "gunicorn.log")
    try:
        ready = requests.get(base + "/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        assert ready.json()["checks"]["migrations"]["ok"] is True

        proxy.cut()
        down = wait_until(lambda: (r := requests.get(base + "/readyz", timeout=10)).status_code == 503 and [r],
                          timeout=20, what="/readyz to report the database gone")[0]
        assert down.json()["checks"]["database"]["ok"] is False
        assert requests.get(base + "/healthz", timeout=5).status_code == 200  # the process itself is alive
        assert url.split("@")[-1] not in down.text

        proxy.restore()
        wait_until(lambda: requests.get(base + "/readyz", timeout=10).status_code == 200, timeout=20,
                   what="/readyz to recover")
    finally:
        stop(proc)


def test_webhooks_while_the_database_is_gone_are_stored_or_refused_never_acknowledged_and_lost(
        app, proxied_database, tc_shop, session, tmp_path):
    proxy, url = proxied_database
    base, proc = start_gunicorn(service_env(DATABASE_URL=url, COURSEGATE_MAIL_DIR=str(tmp_path / "mail")),
                                workers=2, log=tmp_path / "gunicorn.log")
    answers: dict[str, object] = {}  # order id -> status code (or the connection error)
    stop_posting = threading.Event()

    def post(order_id: str) -> None:
        body, content_type = encode(order(order_id=order_id, email=f"{order_id.lower()}@example.com",
                                          items=["product-12"]), "form")
        try:
            answers[order_id] = requests.post(f"{base}/webhooks/thrivecart/{tc_shop.id}", data=body, timeout=15,
                                              headers={"Content-Type": content_type}).status_code
        except requests.RequestException as exc:
            answers[order_id] = exc

    def keep_posting(prefix: str) -> None:
        n = 0
        while not stop_posting.is_set():
            post(f"{prefix}{n}")
            n += 1
            time.sleep(0.02)

    posters = [threading.Thread(target=keep_posting, args=(f"T{k}-",)) for k in range(3)]
    try:
        for poster in posters:
            poster.start()
        wait_until(lambda: sum(a == 200 for a in list(answers.values())) >= 3, timeout=30,
                   what="deliveries to be stored before the cut")
        proxy.cut()
        wait_until(lambda: requests.get(base + "/readyz", timeout=10).status_code == 503, timeout=20,
                   what="/readyz to report the database gone")
        post("CUT-1")  # sent while /readyz says unavailable
        cut_answer = answers["CUT-1"]
        assert isinstance(cut_answer, requests.RequestException) or cut_answer >= 500, cut_answer  # the cart retries
        time.sleep(1)
        proxy.restore()
        wait_until(lambda: requests.get(base + "/readyz", timeout=10).status_code == 200, timeout=20,
                   what="/readyz to recover")
        time.sleep(1)
        stop_posting.set()
        for poster in posters:
            poster.join(timeout=30)

        session.rollback()
        stored = set(session.scalars(select(WebhookEvent.order_ref)))
        acknowledged = {order_id for order_id, answer in answers.items() if answer == 200}
        refused = {order_id for order_id, answer in answers.items() if answer != 200}
        assert acknowledged and refused, f"the test must see both outcomes: {Counter(map(str, answers.values()))}"
        assert all(isinstance(a, requests.RequestException) or a >= 400 for a in map(answers.get, refused))
        assert acknowledged <= stored, f"acknowledged but never stored: {sorted(acknowledged - stored)[:5]}"
        # The cart retries what was refused; with the database back, the retry is stored and processed.
        retried = sorted(refused)[:3]
        for order_id in retried:
            post(order_id)
        assert [answers[o] for o in retried] == [200] * len(retried)
    finally:
        stop_posting.set()
        for poster in posters:
            poster.join(timeout=30)
        stop(proc)
