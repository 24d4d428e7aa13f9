"""Every periodic job is safe when two copies run at once (two beats by mistake, beat plus cron, a slow run
overlapping the next): both copies race on PostgreSQL and every effect happens once."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

import jobs
import observability
import schedule
import timeutil
from membership import grants
from automations.models import WebhookDelivery, WebhookEndpoint
from billing.gateways import sandbox
from billing.models import Invoice, PaymentAttempt
from emails import transport
from emails.models import OutboundEmail
from extensions import db
from membership import services
from membership.models import Grant, LoginLink
from tests import factories

pytestmark = pytest.mark.postgres

JOBS = {job.name: job for job in schedule.PERIODIC_JOBS}


def two_at_once(app, job_name: str) -> None:
    """Run two copies of the periodic job's task at the same moment, each with its own app context and
    database connection, as two beat/cron processes would."""
    task = JOBS[job_name].load()
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with app.app_context():
                barrier.wait(timeout=10)
                task.run()
                db.session.remove()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), f"{job_name}: a copy did not finish"
    assert not errors, f"{job_name}: {errors!r}"
    db.session.rollback()


def slowly(monkeypatch, owner, name: str, record: list, key=lambda *args, **kwargs: args) -> None:
    """Wrap ``owner.name`` so each call takes a moment (both copies are busy together) and is recorded
    (as ``key(*args, **kwargs)``)."""
    real = getattr(owner, name)

    def wrapper(*args, **kwargs):
        record.append(key(*args, **kwargs))
        time.sleep(0.01)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)


CHECKED = {"emails.sweep", "membership.prune_login_links", "automations.sweep_webhooks", "automations.run_due",
           "billing.tick", "billing.settle_payments"}


def test_every_periodic_job_has_a_two_copies_test_here():
    assert set(JOBS) == CHECKED, "a new periodic job needs its two-copies test in this module"


def test_two_email_sweeps_send_each_email_once(app, session, monkeypatch):
    with monkeypatch.context() as lost_triggers:  # the rows are committed but their delivery jobs never ran
        lost_triggers.setattr(jobs, "dispatch", lambda task, *args: None)
        for n in range(30):
            services.queue_welcome_email(session, factories.make_member(email=f"sweep{n}@example.com"), [])
        session.commit()
    assert set(session.scalars(select(OutboundEmail.status))) == {"pending"}
    sent: list = []
    monkeypatch.setattr(transport, "send", _recording(sent))

    two_at_once(app, "emails.sweep")

    per_email = Counter(kwargs["email_id"] for _, kwargs in sent)
    assert len(per_email) == 30 and set(per_email.values()) == {1}, per_email.most_common(3)
    assert set(session.scalars(select(OutboundEmail.status))) == {"sent"}


def _recording(record: list):
    def send(**kwargs):  # an SMTP round trip, recorded
        record.append(((), kwargs))
        time.sleep(0.01)
    return send


def test_two_revocation_runs_revoke_each_due_grant_once(app, session, monkeypatch):
    level = factories.make_level(name="Pro", slug="pro")
    past = timeutil.now() - timedelta(minutes=1)
    for n in range(25):
        grant = factories.grant(factories.make_member(email=f"due{n}@example.com"), level)
        grant.revoke_at, grant.scheduled_revoke_reason = past, "cancelled at period end"
    session.commit()
    revoked: list = []
    slowly(monkeypatch, grants, "revoke", revoked, key=lambda session, chosen, reason, **kw: [g.id for g in chosen])

    two_at_once(app, "automations.run_due")

    per_grant = Counter(grant_id for ids in revoked for grant_id in ids)
    assert len(per_grant) == 25 and set(per_grant.values()) == {1}, per_grant.most_common(3)
    assert set(session.scalars(select(Grant.status))) == {"revoked"}


def test_two_outgoing_webhook_sweeps_deliver_each_once(app, session, mocked_responses):
    mocked_responses.post("https://hooks.example.com/in", status=200)
    endpoint = WebhookEndpoint(url="https://hooks.example.com/in", secret="whsec-test", events=["*"])
    session.add(endpoint)
    session.flush()
    for n in range(25):
        session.add(WebhookDelivery(endpoint_id=endpoint.id, event_type="grant_created", body=f'{{"n": {n}}}',
                                    next_attempt_at=timeutil.now() - timedelta(seconds=1)))
    session.commit()

    two_at_once(app, "automations.sweep_webhooks")

    bodies = Counter(call.request.body for call in mocked_responses.calls)
    assert len(bodies) == 25 and set(bodies.values()) == {1}, bodies.most_common(3)
    assert set(session.scalars(select(WebhookDelivery.status))) == {"delivered"}


def test_two_login_link_prunes_delete_old_links_once_without_errors(app, session):
    member = factories.make_member()
    old = timeutil.now() - timedelta(days=60)
    for n in range(20):
        session.add(LoginLink(member_id=member.id, link_hash=f"{n:064d}", purpose="login", issued_at=old))
    session.add(LoginLink(member_id=member.id, link_hash="f" * 64, purpose="login", issued_at=timeutil.now()))
    session.commit()

    two_at_once(app, "membership.prune_login_links")

    assert list(session.scalars(select(LoginLink.link_hash))) == ["f" * 64]


def test_two_billing_ticks_charge_each_invoice_once(app, session, monkeypatch):
    # The lifecycle has its own race test (tests/billing/test_concurrency.py); this runs the periodic task itself.
    from tests.billing.helpers import make_plan
    from tests.billing.test_concurrency import COUNT, DUE, seed_due_mandates

    app.config["BILLING_BATCH_SIZE"] = 7
    seed_due_mandates(make_plan(), COUNT)
    charges: list = []
    slowly(monkeypatch, sandbox.SandboxGateway, "charge", charges)
    before = _metric("coursegate_billing_outcomes_total")

    with timeutil.frozen(DUE):
        two_at_once(app, "billing.tick")

    assert len(charges) == COUNT
    assert session.scalar(select(func.count(Invoice.id))) == COUNT
    assert session.scalar(select(func.count(PaymentAttempt.id))) == COUNT
    assert _metric("coursegate_billing_outcomes_total") - before >= COUNT  # the tick's outcomes reach /metrics


def test_two_payment_sweeps_ask_about_each_charge_in_doubt_once(app, session, monkeypatch):
    from billing import charges
    from billing.models import SandboxPayment
    from tests.billing.helpers import make_plan
    from tests.billing.test_concurrency import COUNT, DUE, seed_due_mandates

    app.config["BILLING_BATCH_SIZE"] = 7
    seed_due_mandates(make_plan(), COUNT, behaviour="timeout_after_charge")
    with timeutil.frozen(DUE):
        JOBS["billing.tick"].load().run()  # every charge made, no answer heard
    lookups: list = []
    slowly(monkeypatch, sandbox.SandboxGateway, "find_charge", lookups)

    with timeutil.frozen(DUE + charges.RECHECK_AFTER):
        two_at_once(app, "billing.settle_payments")

    assert len(lookups) == COUNT
    assert session.scalar(select(func.count(Invoice.id)).where(Invoice.status == "paid")) == COUNT
    assert session.scalar(select(func.count(SandboxPayment.id))) == COUNT


def _metric(name: str) -> float:
    total = 0.0
    for family in observability.BILLING_OUTCOMES.collect():
        for sample in family.samples:
            if sample.name == name:
                total += sample.value
    return total
