"""A launch on the production topology: two gunicorn app processes and two Celery workers on PostgreSQL and Redis,
all started and stopped here, taking a burst of real ThriveCart deliveries; every email goes to a local SMTP server."""

from __future__ import annotations

import signal
import threading
from collections import Counter

import pytest
import requests
from sqlalchemy import func, select

from emails.models import OutboundEmail
from extensions import db
from membership.models import Grant, Member
from tests.production.conftest import expected_effects, launch_burst, post_groups
from tests.production.processes import (run_cli, service_env, start_celery_worker, start_gunicorns, stop,
                                        wait_until)

pytestmark = pytest.mark.postgres


def production_env(database_url: str, redis_url: str, sink) -> dict[str, str]:
    """The deploy guide's settings, pointed at 127.0.0.1."""
    return service_env(DATABASE_URL=database_url, CELERY_BROKER_URL=redis_url, MAIL_SERVER="127.0.0.1",
                       MAIL_PORT=str(sink.port), MAIL_USE_TLS="false", COURSEGATE_MAIL_TIMEOUT="10")


def count(model, *where) -> int:
    db.session.rollback()  # a fresh snapshot: the processes commit, not us
    return db.session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def outbox() -> list[OutboundEmail]:
    db.session.rollback()
    return list(db.session.scalars(select(OutboundEmail).order_by(OutboundEmail.id)))


def recipients(messages) -> Counter:
    return Counter(str(m["To"]).strip().lower() for m in messages)


def assert_answers(responses, expected) -> None:
    failures = [r for r in responses if not isinstance(r, requests.Response) or r.status_code != 200]
    assert not failures, f"{len(failures)} deliveries were not answered 200: {failures[:3]}"
    statuses = Counter(r.json()["status"] for r in responses)
    assert statuses == {"processed": expected.processed, "duplicate": expected.duplicates}, statuses


def assert_members_and_grants(expected) -> None:
    assert count(Member) == expected.members
    assert count(Grant) == expected.grants
    assert count(Grant, Grant.status == "active") == expected.grants
    per_member = Counter(e.member_id for e in outbox() if e.template == "welcome")
    assert len(per_member) == expected.members and set(per_member.values()) == {1}, \
        "every new member gets exactly one welcome email"


@pytest.fixture
def stack(app, database_url, redis_url, smtp_sink, tmp_path):
    """Two gunicorn masters (2 workers each) and two Celery workers; all stopped after the test."""
    env = production_env(database_url, redis_url, smtp_sink)
    # The deploy guide's order: migrate (here: already at head, so a no-op), then start the processes.
    assert "Running upgrade" not in run_cli(env, "db", "upgrade").stderr
    workers = [start_celery_worker(env, f"scale{n}", log=tmp_path / f"celery{n}.log") for n in range(2)]
    try:
        apps = start_gunicorns(env, 2, workers=2, log_dir=tmp_path)
    except BaseException:
        for worker in workers:
            stop(worker)
        raise
    try:
        yield env, [url for url, _ in apps], workers
    finally:
        for proc in [p for _, p in apps] + workers:
            stop(proc)


def test_a_burst_across_two_app_processes_and_two_workers_has_exactly_once_effects(stack, tc_shop, smtp_sink):
    env, bases, _ = stack
    shape = dict(singles=40, pairs=10, redeliveries=12)  # 84 deliveries
    expected = expected_effects(**shape)

    responses = post_groups(bases, tc_shop.id, launch_burst("L", **shape))

    assert_answers(responses, expected)
    assert_members_and_grants(expected)
    wait_until(lambda: all(e.status == "sent" for e in outbox()), timeout=60,
               what="the Celery workers to deliver every email")
    rows = outbox()
    smtp_sink.wait_for(len(rows) + 1, timeout=2)  # a little longer: a second copy would show up here
    assert recipients(smtp_sink.messages) == Counter(e.recipient for e in rows), "each email delivered exactly once"
    members = {m.lower() for m in db.session.scalars(select(Member.email))}
    assert {e.recipient for e in rows if e.template == "welcome"} == members


def test_a_worker_killed_mid_burst_loses_nothing(stack, tc_shop, smtp_sink):
    env, bases, (doomed, survivor) = stack
    shape = dict(singles=50, pairs=8, redeliveries=10)  # 86 deliveries
    expected = expected_effects(**shape)
    answers: list = []
    burst = threading.Thread(target=lambda: answers.extend(
        post_groups(bases, tc_shop.id, launch_burst("K", **shape), threads=4)))
    burst.start()
    try:
        wait_until(lambda: len(smtp_sink.messages) >= 5, timeout=60, what="the workers to start sending")
        stop(doomed, signal.SIGKILL)  # mid-task: no clean shutdown, no ack, its pool children die with it
        assert doomed.returncode == -signal.SIGKILL
    finally:
        burst.join(timeout=120)
    assert not burst.is_alive(), "the burst did not finish"

    assert_answers(answers, expected)
    assert_members_and_grants(expected)
    # The surviving worker keeps delivering what is queued...
    wait_until(lambda: len(smtp_sink.messages) >= expected.members - 4, timeout=60,
               what="the surviving worker to deliver the queue")
    assert survivor.poll() is None
    # ...and the sweep (`flask --app app emails send-pending`, what beat runs every minute) sends whatever the
    # killed worker had taken: those rows are still pending in PostgreSQL.
    run_cli(env, "emails", "send-pending")
    wait_until(lambda: all(e.status == "sent" for e in outbox()), timeout=30, what="every email to be sent")
    rows = outbox()
    delivered = recipients(smtp_sink.messages)
    assert set(delivered) == {e.recipient for e in rows}, "every email reached the SMTP server"
    # At-least-once at the SMTP boundary: only a message the killed worker had handed to SMTP but not yet
    # recorded as sent (at most one per pool process) may arrive twice.
    assert sum(delivered.values()) - len(rows) <= 2, delivered.most_common(3)
