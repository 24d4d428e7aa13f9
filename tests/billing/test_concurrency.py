"""Two ticks at once on PostgreSQL charge every invoice exactly once."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

import timeutil
from billing import lifecycle
from billing.gateways import sandbox
from billing.models import Invoice, Mandate, PaymentAttempt, PaymentMethod, SandboxCard, SandboxPayment
from extensions import db
from membership.models import Member
from tests.billing.helpers import make_plan

DUE = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
COUNT = 40


def seed_due_mandates(plan, count: int, behaviour: str = "success") -> None:
    for n in range(count):
        member = Member(email=f"m{n}@example.com", name=f"M{n}")
        card = SandboxCard(token=f"sbx_pm_seed{n}", behaviour=behaviour, brand="visa", last4="4242",
                           exp_month=12, exp_year=2034)
        db.session.add_all([member, card])
        db.session.flush()
        method = PaymentMethod(member_id=member.id, gateway="sandbox", token=card.token, brand="visa",
                               last4="4242", exp_month=12, exp_year=2034)
        db.session.add(method)
        db.session.flush()
        db.session.add(Mandate(member_id=member.id, plan_id=plan.id, payment_method_id=method.id, gateway="sandbox",
                               amount=plan.amount, currency=plan.currency, interval_unit=plan.interval_unit,
                               interval_count=plan.interval_count, authorisation_text="I authorise.",
                               status="active", signed_at=DUE - timedelta(days=30),
                               created_at=DUE - timedelta(days=30), current_period_end=DUE))
    db.session.commit()


@pytest.mark.postgres
def test_two_concurrent_ticks_charge_each_invoice_once(app, app_ctx, monkeypatch):
    app.config["BILLING_BATCH_SIZE"] = 7  # many small batches, so the two ticks interleave
    plan = make_plan()
    seed_due_mandates(plan, COUNT)

    real_charge = sandbox.SandboxGateway.charge

    def slow_charge(self, *args, **kwargs):
        time.sleep(0.01)  # a provider round trip: keeps both ticks busy at the same time
        return real_charge(self, *args, **kwargs)

    monkeypatch.setattr(sandbox.SandboxGateway, "charge", slow_charge)
    reports, errors = [], []
    start = threading.Barrier(2)

    def run():
        try:
            with app.app_context():
                start.wait()
                reports.append(lifecycle.tick(db.session, DUE))
                db.session.remove()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with timeutil.frozen(DUE):
        # Both ticks issue (the invoices were due already) and charge, racing each other.
        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert not errors
    assert sum(r.issued for r in reports) == COUNT
    assert sum(r.charged for r in reports) == COUNT
    assert all(r.charged for r in reports), "both ticks should have done part of the work"
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Invoice.id))) == COUNT
    assert db.session.scalar(select(func.count(Invoice.id)).where(Invoice.status == "paid")) == COUNT
    assert db.session.scalar(select(func.count(PaymentAttempt.id))) == COUNT
    assert db.session.scalar(select(func.count(SandboxPayment.id))) == COUNT
    per_invoice = db.session.execute(
        select(PaymentAttempt.invoice_id, func.count()).group_by(PaymentAttempt.invoice_id)
        .having(func.count() > 1)
    ).all()
    assert per_invoice == []


@pytest.mark.postgres
def test_two_ticks_and_the_sweep_at_once_settle_lost_answers_without_charging_again(app, app_ctx, monkeypatch):
    from billing import charges

    app.config["BILLING_BATCH_SIZE"] = 7
    plan = make_plan()
    seed_due_mandates(plan, COUNT, behaviour="timeout_after_charge")
    with timeutil.frozen(DUE):
        assert lifecycle.tick(db.session, DUE).outcomes == {"unknown": COUNT}
    assert db.session.scalar(select(func.count(SandboxPayment.id))) == COUNT  # charged; no answer heard

    real_find = sandbox.SandboxGateway.find_charge

    def slow_find(self, *args, **kwargs):
        time.sleep(0.01)
        return real_find(self, *args, **kwargs)

    monkeypatch.setattr(sandbox.SandboxGateway, "find_charge", slow_find)
    later = DUE + charges.RECHECK_AFTER
    start = threading.Barrier(3)
    errors = []

    def run(work):
        try:
            with app.app_context():
                start.wait()
                work()
                db.session.remove()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    with timeutil.frozen(later):
        threads = [threading.Thread(target=run, args=(work,)) for work in (
            lambda: lifecycle.tick(db.session, later), lambda: lifecycle.tick(db.session, later),
            lambda: charges.settle_open_attempts(db.session, later))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert not errors
    db.session.expire_all()
    assert db.session.scalar(select(func.count(Invoice.id)).where(Invoice.status == "paid")) == COUNT
    assert db.session.scalar(select(func.count(SandboxPayment.id))) == COUNT
    assert db.session.scalar(select(func.count(PaymentAttempt.id))) == COUNT
