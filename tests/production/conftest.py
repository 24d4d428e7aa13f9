"""Shared pieces of the production tests: Redis (skipped when absent), the SMTP sink, a ThriveCart shop, bursts."""

from __future__ import annotations

import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest
import requests

from tests.conftest import SmtpSink
from tests.factories import make_course, make_integration, make_level, make_rule
from tests.fulfillment.helpers import encode, order

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# A database number of its own on the shared Redis; only this one is flushed.
REDIS_DB = int(os.environ.get("COURSEGATE_TEST_REDIS_DB", "7"))


def redis_reachable() -> bool:
    try:
        socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture
def redis_url():
    """redis://127.0.0.1:6379/<REDIS_DB>, emptied before and after the test; skips when Redis is not running."""
    if not redis_reachable():
        pytest.skip(f"needs Redis at {REDIS_HOST}:{REDIS_PORT} (Celery broker and rate-limit store)")
    import redis

    client = redis.Redis(REDIS_HOST, REDIS_PORT, db=REDIS_DB)
    client.flushdb()
    yield f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
    client.flushdb()
    client.close()


@pytest.fixture
def smtp_sink():
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def tc_shop(session):
    """A ThriveCart integration accepting test orders: product 12 -> pro, bump 12 -> bonus."""
    course = make_course(slug="launch-course")
    pro = make_level(name="Pro", slug="pro", courses=[course])
    bonus = make_level(name="Bonus", slug="bonus", courses=[course])
    integration = make_integration(kind="thrivecart", secret="TESTSECRET", accept_test_orders=True)
    make_rule(integration, "12", [pro])
    make_rule(integration, "12", [bonus], item_type="bump")
    session.commit()
    return SimpleNamespace(id=integration.id, pro=pro, bonus=bonus)


def launch_burst(prefix: str, *, singles: int, pairs: int, redeliveries: int) -> list[list[tuple[int, bytes, str]]]:
    """Groups of deliveries built from the real order.success.subscription.json. Each group is posted at once,
    its members to alternating processes (index 0 or 1):

    - ``singles`` new buyers, one order each (product 12);
    - ``pairs`` buyers who order twice (product 12 and bump 12) at the same moment, one order per process;
    - ``redeliveries`` orders that ThriveCart sends twice, the copies to both processes at once.
    """
    single_groups, pair_groups, again_groups = [], [], []
    for n in range(singles):
        body = encode(order(order_id=f"{prefix}S{n}", email=f"{prefix.lower()}.single{n}@example.com",
                            items=["product-12"]), "form" if n % 2 else "json")
        single_groups.append([(n % 2, *body)])
    for n in range(pairs):
        email = f"{prefix.lower()}.pair{n}@example.com"
        first = encode(order(order_id=f"{prefix}PA{n}", email=email, items=["product-12"]), "form")
        second = encode(order(order_id=f"{prefix}PB{n}", email=email.upper(), items=["bump-12"]), "json")
        pair_groups.append([(0, *first), (1, *second)])
    for n in range(redeliveries):
        body = encode(order(order_id=f"{prefix}R{n}", email=f"{prefix.lower()}.again{n}@example.com",
                            items=["product-12", "bump-12"]), "form")
        again_groups.append([(n % 2, *body), ((n + 1) % 2, *body)])
    # Interleave the kinds so the processes see a mixed stream.
    kinds = [single_groups, pair_groups, again_groups]
    return [kind[i] for i in range(max(map(len, kinds))) for kind in kinds if i < len(kind)]


def expected_effects(*, singles: int, pairs: int, redeliveries: int) -> SimpleNamespace:
    return SimpleNamespace(members=singles + pairs + redeliveries, grants=singles + 2 * pairs + 2 * redeliveries,
                           processed=singles + 2 * pairs + redeliveries, duplicates=redeliveries)


def post_groups(bases: list[str], integration_id: int, groups, *, threads: int = 8) -> list[requests.Response]:
    """Post every group concurrently (up to ``threads`` groups in flight); a group's deliveries leave together."""

    def send_group(group) -> list[requests.Response]:
        barrier = threading.Barrier(len(group))
        results: list = [None] * len(group)

        def send(i: int, target: int, body: bytes, content_type: str) -> None:
            barrier.wait(timeout=30)
            try:
                results[i] = requests.post(f"{bases[target]}/webhooks/thrivecart/{integration_id}", data=body,
                                           headers={"Content-Type": content_type}, timeout=60)
            except requests.RequestException as exc:  # a refused connection counts as "not a 2xx"
                results[i] = exc

        workers = [threading.Thread(target=send, args=(i, *item)) for i, item in enumerate(group)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=90)
        return results

    with ThreadPoolExecutor(max_workers=threads) as pool:
        return [r for results in pool.map(send_group, groups) for r in results]
