"""The billing tick: one pass that expires, issues, charges, retries and gives up. Safe to run concurrently.

Work is selected in set-based batches. Rows a tick works on are locked with ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL, so a second tick running at the same time takes other rows; invoices being charged are also
*claimed* (``claim_token``) and the claim is committed before the gateway is called, so no other tick
(or customer retry) charges the same invoice until this one has recorded the outcome. Each charge is
committed on its own, so a crash loses at most the charge in flight (and the gateway's idempotency key
makes a repeat of that one harmless).
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import exists, or_, select, update
from sqlalchemy.orm import Session, joinedload, selectinload

import timeutil
from sqlutil import dialect_insert
from billing import charges, invoices, notify, pauses
from billing.models import (BILLABLE_MANDATE_STATUSES, Invoice, InvoiceStatus, Mandate, MandateStatus,
                            PaymentStatus, Plan)
from billing.periods import add_interval
from membership.models import Grant, GrantSourceKind, GrantStatus, Level, Member

logger = logging.getLogger(__name__)

CLAIM_STALE_AFTER = timedelta(minutes=30)


@dataclass
class TickReport:
    expired: int = 0
    issued: int = 0
    charged: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    unpaid: int = 0

    def summary(self) -> str:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())) or "none"
        return (f"expired {self.expired}, issued {self.issued}, charged {self.charged} ({outcomes}), "
                f"unpaid {self.unpaid}")


def tick(session: Session, now: datetime | None = None) -> TickReport:
    """One full pass. This is a boundary: it commits (per batch, and per charge)."""
    now = now or timeutil.now()
    batch = int(current_app.config["BILLING_BATCH_SIZE"])
    report = TickReport()
    report.expired = expire_pending(session, now)
    pauses.resume_due(session, now)  # pauses that ran out, before invoicing sees their mandates
    session.commit()
    report.issued = issue_due_invoices(session, now, batch)
    charge_due_invoices(session, now, batch, report)
    report.unpaid = give_up_exhausted(session, now, batch)
    return report


def expire_pending(session: Session, now: datetime) -> int:
    """Mandates never signed within the pending window expire (one UPDATE)."""
    cutoff = now - timedelta(hours=int(current_app.config["BILLING_PENDING_HOURS"]))
    result = session.execute(
        update(Mandate)
        .where(Mandate.status == MandateStatus.PENDING_AUTHORISATION, Mandate.created_at <= cutoff)
        .values(status=MandateStatus.EXPIRED, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount or 0


def _insert_ignoring_duplicates(session: Session, rows: list[dict]) -> list[int]:
    statement = (dialect_insert(session, Invoice)
                 .on_conflict_do_nothing(index_elements=["mandate_id", "period_start"]).returning(Invoice.id))
    return list(session.scalars(statement, rows))


def issue_due_invoices(session: Session, now: datetime, batch: int) -> int:
    """Invoice every active mandate whose next period starts within the lead time, and email the customer.

    One invoice open at a time per mandate; the unique (mandate, period start) makes a rerun a no-op.
    """
    lead = timedelta(hours=int(current_app.config["BILLING_INVOICE_LEAD_HOURS"]))
    issued = 0
    while True:
        open_invoice = exists().where(Invoice.mandate_id == Mandate.id, Invoice.status == InvoiceStatus.OPEN)
        rows = session.execute(
            select(Mandate.id, Mandate.member_id, Mandate.amount, Mandate.currency, Mandate.interval_unit,
                   Mandate.interval_count, Mandate.current_period_end)
            .where(Mandate.status == MandateStatus.ACTIVE, Mandate.current_period_end <= now + lead,
                   ~open_invoice)
            .order_by(Mandate.current_period_end, Mandate.id)
            .limit(batch)
            .with_for_update(skip_locked=True, of=Mandate)
        ).all()
        if not rows:
            session.rollback()
            return issued
        values = [invoices.invoice_values(r.id, r.member_id, r.amount, r.currency, r.interval_unit,
                                          r.interval_count, r.current_period_end, now=now) for r in rows]
        new_ids = _insert_ignoring_duplicates(session, values)
        session.execute(update(Mandate), [
            {"id": r.id, "current_period_end": add_interval(r.current_period_end, r.interval_unit,
                                                            r.interval_count), "updated_at": now}
            for r in rows
        ])
        if new_ids:
            with notify.batched(session):
                for invoice, member, plan_name, level_name in session.execute(
                    select(Invoice, Member, Plan.name, Level.name)
                    .join(Mandate, Mandate.id == Invoice.mandate_id)
                    .join(Member, Member.id == Invoice.member_id)
                    .join(Plan, Plan.id == Mandate.plan_id)
                    .join(Level, Level.id == Plan.level_id)
                    .where(Invoice.id.in_(new_ids))
                ):
                    notify.invoice_issued(session, invoice, member, plan_name, level_name)
        session.commit()
        issued += len(new_ids)


def _claim(session: Session, now: datetime, batch: int, token: str) -> list[int]:
    stale = now - CLAIM_STALE_AFTER
    unclaimed = or_(Invoice.claim_token.is_(None), Invoice.claimed_at < stale)
    ids = session.scalars(
        select(Invoice.id)
        .join(Mandate, Mandate.id == Invoice.mandate_id)
        .where(Invoice.status == InvoiceStatus.OPEN, Invoice.next_attempt_at <= now, unclaimed,
               Mandate.status.in_(BILLABLE_MANDATE_STATUSES))
        .order_by(Invoice.next_attempt_at, Invoice.id)
        .limit(batch)
        .with_for_update(skip_locked=True, of=Invoice)
    ).all()
    if ids:
        # The claim repeats the condition, so on SQLite (no row locks) a tick that lost the race claims nothing.
        session.execute(
            update(Invoice).where(Invoice.id.in_(ids), unclaimed, Invoice.status == InvoiceStatus.OPEN)
            .values(claim_token=token, claimed_at=now).execution_options(synchronize_session=False)
        )
    session.commit()
    return list(session.scalars(select(Invoice.id).where(Invoice.claim_token == token).order_by(Invoice.id)))


def charge_due_invoices(session: Session, now: datetime, batch: int, report: TickReport) -> None:
    """Charge every open invoice whose (first or retry) attempt is due, off-session, a batch at a time.

    A batch's outcomes are written in one commit. If the tick dies mid-batch, the charges already made are
    not lost: the claims go stale, a later tick charges again with the same idempotency keys (the attempt
    numbers did not move), and the gateway answers with the first result instead of charging twice. If a
    batch fails, its invoices are charged one at a time, so one broken invoice cannot hold up the others.
    """
    while True:
        token = secrets.token_hex(16)
        claimed = _claim(session, now, batch, token)
        if not claimed:
            return
        try:
            outcomes = _charge_batch(session, claimed)
        except Exception:
            logger.exception("charging a batch of %s invoices failed; charging them one at a time", len(claimed))
            session.rollback()
            outcomes = []
            for invoice_id in claimed:
                try:
                    outcomes += _charge_batch(session, [invoice_id])
                except Exception:
                    logger.exception("charging invoice %s failed; next try in an hour", invoice_id)
                    session.rollback()
                    session.execute(update(Invoice).where(Invoice.id == invoice_id, Invoice.claim_token == token)
                                    .values(claim_token=None, claimed_at=None,
                                            next_attempt_at=now + invoices.GATEWAY_ERROR_BACKOFF))
                    session.commit()
                    outcomes.append("error")
        report.charged += len(outcomes)
        for outcome in outcomes:
            report.outcomes[outcome] = report.outcomes.get(outcome, 0) + 1


def _charge_batch(session: Session, invoice_ids: list[int]) -> list[str]:
    """Charge the claimed invoices, record every outcome, release the claims: one commit."""
    loaded = session.scalars(
        select(Invoice).where(Invoice.id.in_(invoice_ids))
        .options(joinedload(Invoice.mandate).joinedload(Mandate.payment_method),
                 joinedload(Invoice.mandate).joinedload(Mandate.member),
                 joinedload(Invoice.mandate).joinedload(Mandate.plan),
                 selectinload(Invoice.attempts))
        .order_by(Invoice.id)
    ).unique().all()
    mandate_ids = [invoice.mandate_id for invoice in loaded]
    grants: dict[int, Grant | None] = dict.fromkeys(mandate_ids)
    for grant in session.scalars(
        select(Grant).where(Grant.mandate_id.in_(mandate_ids), Grant.source_kind == GrantSourceKind.SUBSCRIPTION,
                            Grant.status != GrantStatus.REVOKED).order_by(Grant.id)
    ):
        grants[grant.mandate_id] = grant  # the newest wins
    session.info[invoices.GRANT_CACHE] = grants
    outcomes: list[str] = []
    try:
        with notify.batched(session):
            with session.no_autoflush:
                for invoice in loaded:
                    if invoice.mandate.payment_method is None:
                        invoice.next_attempt_at = None
                        outcomes.append("no_payment_method")
                    else:
                        outcomes.append(charges.charge_invoice(session, invoice, initiated_by="tick").outcome)
                    invoice.claim_token = None
                    invoice.claimed_at = None
        session.commit()
    finally:
        session.info.pop(invoices.GRANT_CACHE, None)
    return outcomes


def give_up_exhausted(session: Session, now: datetime, batch: int) -> int:
    """Past-due invoices with no retry left once the schedule has run out: mandate unpaid, grant revoked."""
    schedule = invoices.retry_days()
    last_day = timedelta(days=max(schedule) if schedule else 0)
    done = 0
    while True:
        rows = session.scalars(
            select(Invoice)
            .join(Mandate, Mandate.id == Invoice.mandate_id)
            .where(Invoice.status == InvoiceStatus.OPEN,
                   Invoice.payment_status.in_([PaymentStatus.FAILED, PaymentStatus.REQUIRES_ACTION]),
                   Invoice.next_attempt_at.is_(None), Invoice.claim_token.is_(None),
                   Invoice.due_at <= now - last_day,
                   Mandate.status == MandateStatus.PAST_DUE)
            .order_by(Invoice.id)
            .limit(batch)
            .with_for_update(skip_locked=True, of=Invoice)
        ).all()
        if not rows:
            session.rollback()
            return done
        with notify.batched(session):
            for invoice in rows:
                invoices.exhaust(session, invoice)
        session.commit()
        done += len(rows)

