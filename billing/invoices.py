"""Invoices and charging them: one invoice per mandate and period; every attempt recorded.

The outcome of a charge decides everything else: paid renews the grant by exactly one period; a failure
puts the mandate past due (access kept through the grace period) and schedules the next retry;
``requires_action`` waits for the customer; retries running out make the mandate unpaid.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

import timeutil
from billing import notify
from billing.errors import InvoiceBusy, InvoiceNotFound, InvoiceNotOpen
from billing.gateways.base import CardDetails, ChargeResult
from billing.models import (AttemptOutcome, Invoice, InvoiceStatus, Mandate, MandateStatus, PaymentAttempt,
                            PaymentMethod, PaymentStatus)
from billing.periods import add_interval
from membership import grants
from membership.grants import RevokeReason
from membership.models import Grant, GrantSourceKind, GrantStatus

logger = logging.getLogger(__name__)

GATEWAY_ERROR_BACKOFF = timedelta(hours=1)


def retry_days() -> list[int]:
    raw = current_app.config["BILLING_RETRY_DAYS"]
    if isinstance(raw, int):  # COURSEGATE_BILLING_RETRY_DAYS=3 arrives parsed as JSON
        return [raw]
    if isinstance(raw, str):
        return [int(part) for part in raw.split(",") if part.strip()]
    return [int(day) for day in raw]


def grace_days() -> int:
    return int(current_app.config["BILLING_GRACE_DAYS"])


def invoice_number(mandate_id: int, period_start: datetime) -> str:
    """Unique because (mandate, period start) is."""
    return f"CG-{mandate_id:06d}-{period_start:%Y%m%d%H%M}"


def invoice_values(mandate_id: int, member_id: int, amount: int, currency: str, unit: str, count: int,
                   period_start: datetime, *, now: datetime) -> dict:
    return {
        "number": invoice_number(mandate_id, period_start),
        "mandate_id": mandate_id, "member_id": member_id, "amount": amount, "currency": currency,
        "period_start": period_start, "period_end": add_interval(period_start, unit, count),
        "issued_at": now, "due_at": period_start, "next_attempt_at": period_start,
        "status": InvoiceStatus.OPEN, "payment_status": PaymentStatus.PENDING, "attempt_count": 0,
        "created_at": now, "updated_at": now,
    }


def get_invoice(session: Session, invoice_id: int) -> Invoice:
    invoice = session.get(Invoice, invoice_id)
    if invoice is None:
        raise InvoiceNotFound()
    return invoice


def issue_invoice(session: Session, mandate: Mandate, period_start: datetime, *,
                  notify_customer: bool = True) -> Invoice:
    """Issue the invoice for the period starting ``period_start`` (or return the one already issued)."""
    existing = session.scalar(select(Invoice).where(Invoice.mandate_id == mandate.id,
                                                    Invoice.period_start == period_start))
    if existing is not None:
        return existing
    now = timeutil.now()
    invoice = Invoice(**invoice_values(mandate.id, mandate.member_id, mandate.amount, mandate.currency,
                                       mandate.interval_unit, mandate.interval_count, period_start, now=now))
    session.add(invoice)
    mandate.current_period_end = invoice.period_end
    session.flush()
    if notify_customer:
        notify.invoice_issued(session, invoice, mandate.member, mandate.plan.name)
    return invoice


def card_of(method: PaymentMethod) -> CardDetails:
    return CardDetails(token=method.token, brand=method.brand, last4=method.last4, exp_month=method.exp_month,
                       exp_year=method.exp_year, customer_ref=method.customer_ref)


def lock_for_customer(session: Session, invoice: Invoice) -> Invoice:
    """Lock the row for a charge a person asked for; refuse while a tick holds it."""
    session.refresh(invoice, with_for_update=True)
    if invoice.status != InvoiceStatus.OPEN:
        raise InvoiceNotOpen()
    if invoice.claim_token is not None:
        raise InvoiceBusy()
    return invoice


def record_attempt(session: Session, invoice: Invoice, result: ChargeResult, *, initiated_by: str,
                   method: PaymentMethod | None) -> PaymentAttempt:
    attempt = PaymentAttempt(invoice=invoice, payment_method_id=method.id if method else None,
                             amount=invoice.amount, currency=invoice.currency, outcome=result.outcome,
                             gateway=invoice.mandate.gateway, gateway_ref=result.reference,
                             message=(result.message or "")[:500] or None, initiated_by=initiated_by,
                             created_at=timeutil.now())
    session.add(attempt)
    apply_outcome(session, invoice, result, automatic=initiated_by == "tick")
    return attempt


def apply_outcome(session: Session, invoice: Invoice, result: ChargeResult, *, automatic: bool) -> None:
    now = timeutil.now()
    outcome = result.outcome
    if outcome == AttemptOutcome.SUCCEEDED:
        mark_paid(session, invoice)
        return
    if outcome == AttemptOutcome.GATEWAY_ERROR:
        # The provider did not decide; try again soon without counting it as a decline.
        if automatic:
            invoice.next_attempt_at = now + GATEWAY_ERROR_BACKOFF
        return
    if outcome == AttemptOutcome.REQUIRES_ACTION:
        invoice.payment_status = PaymentStatus.REQUIRES_ACTION
        invoice.action_ref = result.reference
        invoice.next_attempt_at = None  # never retried automatically: the customer authenticates
        _past_due(session, invoice)
        notify.action_required(session, invoice, invoice.mandate.member, invoice.mandate.plan.name)
        return
    invoice.payment_status = PaymentStatus.FAILED
    invoice.action_ref = None
    if automatic:
        invoice.attempt_count += 1
        schedule = retry_days()
        if outcome == AttemptOutcome.FAILED_RETRYABLE and invoice.attempt_count <= len(schedule):
            invoice.next_attempt_at = invoice.due_at + timedelta(days=schedule[invoice.attempt_count - 1])
        else:
            invoice.next_attempt_at = None
    _past_due(session, invoice)
    notify.payment_failed(session, invoice, invoice.mandate.member, invoice.mandate.plan.name, grace_days(),
                          result.message)


GRANT_CACHE = "billing_grants"  # session.info key: mandate id -> its grant, preloaded for a tick's batch


def subscription_grant(session: Session, mandate_id: int) -> Grant | None:
    cache = session.info.get(GRANT_CACHE)
    if cache is not None and mandate_id in cache:
        return cache[mandate_id]
    return session.scalar(
        select(Grant).where(Grant.mandate_id == mandate_id, Grant.source_kind == GrantSourceKind.SUBSCRIPTION,
                            Grant.status != GrantStatus.REVOKED)
        .order_by(Grant.id.desc()).limit(1)
    )


def _past_due(session: Session, invoice: Invoice) -> None:
    mandate = invoice.mandate
    if mandate.status == MandateStatus.ACTIVE:
        mandate.status = MandateStatus.PAST_DUE
    grant = subscription_grant(session, mandate.id)
    if grant is not None:
        # Access continues through the grace period, counted from the end of the paid period.
        grants.mark_past_due(session, [grant], grace_until=invoice.period_start + timedelta(days=grace_days()))


def mark_paid(session: Session, invoice: Invoice) -> None:
    """Paid: the mandate is active again and its grant runs exactly to the end of the invoice's period."""
    now = timeutil.now()
    invoice.status = InvoiceStatus.PAID
    invoice.payment_status = PaymentStatus.SUCCEEDED
    invoice.paid_at = now
    invoice.next_attempt_at = None
    invoice.action_ref = None
    mandate = invoice.mandate
    if mandate.status == MandateStatus.PAST_DUE:
        mandate.status = MandateStatus.ACTIVE
    grant = subscription_grant(session, mandate.id)
    if grant is None:
        grant = grants.open_grant(session, mandate.member, mandate.plan.level,
                                  source_kind=GrantSourceKind.SUBSCRIPTION, starts_at=now, ends_at=invoice.period_end,
                                  subscription_ref=f"mandate:{mandate.id}", mandate_id=mandate.id)
        cache = session.info.get(GRANT_CACHE)
        if cache is not None:
            cache[mandate.id] = grant
    else:
        grants.renew(session, [grant], ends_at=invoice.period_end)
    notify.receipt(session, invoice, mandate.member, mandate.plan.name)


def exhaust(session: Session, invoice: Invoice) -> None:
    """Retries ran out: the invoice is uncollectible, the mandate unpaid and its grant revoked."""
    now = timeutil.now()
    invoice.status = InvoiceStatus.UNCOLLECTIBLE
    invoice.next_attempt_at = None
    mandate = invoice.mandate
    mandate.status = MandateStatus.UNPAID
    grant = subscription_grant(session, mandate.id)
    if grant is not None:
        grants.revoke(session, [grant], RevokeReason.PAYMENT_FAILED, at=now)
    notify.unpaid(session, invoice, mandate.member, mandate.plan.name)


def void_invoice(session: Session, invoice: Invoice, reason: str) -> Invoice:
    if invoice.status != InvoiceStatus.OPEN:
        raise InvoiceNotOpen()
    if invoice.claim_token is not None:  # a tick is charging it right now: do not void under its feet
        raise InvoiceBusy()
    invoice.status = InvoiceStatus.VOID
    invoice.voided_at = timeutil.now()
    invoice.void_reason = reason
    invoice.next_attempt_at = None
    if invoice.payment_status == PaymentStatus.PENDING:
        invoice.payment_status = PaymentStatus.NOT_REQUIRED
    session.flush()
    return invoice


