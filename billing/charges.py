"""Charge attempts: one invoice is charged at most once, whatever happens between us and the gateway.

Every attempt is sent with its own idempotency key, ``coursegate-invoice-<id>-attempt-<n>``, stored on the
attempt. When the answer is lost (timeout, reset connection, 5xx, our process killed after the call) or the
provider is still settling the payment, the attempt stays *in doubt* (``unknown`` / ``processing``) and
the invoice shows ``processing``. Nothing charges that invoice under a new key until the gateway has been
asked what became of the attempt in doubt:

- the provider has the payment: its outcome settles the attempt (paid, declined, needs authentication);
- still processing, or the provider cannot be asked: wait, and ask again later;
- the provider has no such payment: nothing was charged, so the same request is sent again under the same
  key (which also makes a request that did reach the provider answer with its first result).

The answer comes from whichever arrives first: the provider's webhook (``settle_from_gateway_event``), the
next tick's retry, or the sweep (``settle_open_attempts``, a periodic job).
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

import timeutil
from billing import gateways, invoices
from billing.errors import InvoiceNotOpen, NoPaymentMethod
from billing.gateways import stripe_gateway
from billing.gateways.base import ChargeResult, Gateway
from billing.models import (IN_DOUBT_OUTCOMES, AttemptOutcome, Invoice, InvoiceStatus, MandateStatus, PaymentAttempt,
                            PaymentMethod, PaymentStatus)

logger = logging.getLogger(__name__)

RECHECK_AFTER = timedelta(minutes=15)  # when the tick asks again about an attempt in doubt
SWEEP_MIN_AGE = timedelta(minutes=2)  # give the webhook a chance before the sweep asks
CLAIM_STALE_AFTER = timedelta(minutes=30)


def attempt_key(invoice_id: int, number: int) -> str:
    return f"coursegate-invoice-{invoice_id}-attempt-{number}"


def attempt_in_doubt(invoice: Invoice) -> PaymentAttempt | None:
    last = invoice.attempts[-1] if invoice.attempts else None
    return last if last is not None and last.outcome in IN_DOUBT_OUTCOMES else None


def charge(session: Session, invoice: Invoice, method: PaymentMethod, *, initiated_by: str) -> PaymentAttempt:
    """Charge ``invoice`` to ``method`` off-session, unless an earlier attempt may already have."""
    mandate = invoice.mandate
    gateway = gateways.get(mandate.gateway)
    pending = attempt_in_doubt(invoice)
    if pending is not None:
        found = ask(session, gateway, pending, method)
        if found is not None:
            return settle(session, pending, found)
        if pending.payment_method_id == method.id:
            return _send(session, gateway, invoice, method, pending, initiated_by=initiated_by)
        # Nothing was charged, and the card changed since: that request is never sent again.
        settle(session, pending, ChargeResult(AttemptOutcome.GATEWAY_ERROR, pending.gateway_ref,
                                              "Nothing was charged (the provider has no such payment)."))
    attempt = PaymentAttempt(invoice=invoice, payment_method_id=method.id, amount=invoice.amount,
                             currency=invoice.currency, outcome=AttemptOutcome.UNKNOWN, gateway=mandate.gateway,
                             idempotency_key=attempt_key(invoice.id, len(invoice.attempts) + 1),
                             initiated_by=initiated_by, created_at=timeutil.now())
    session.add(attempt)
    return _send(session, gateway, invoice, method, attempt, initiated_by=initiated_by)


def _send(session: Session, gateway: Gateway, invoice: Invoice, method: PaymentMethod, attempt: PaymentAttempt,
          *, initiated_by: str) -> PaymentAttempt:
    attempt.initiated_by = initiated_by
    try:
        result = gateway.charge(session, card=invoices.card_of(method), amount=invoice.amount,
                                currency=invoice.currency, idempotency_key=attempt.idempotency_key,
                                description=f"{invoice.mandate.plan.name} ({invoice.number})",
                                metadata={"coursegate_invoice": str(invoice.id)})
    except Exception as exc:  # the gateway module maps what it knows; anything else may still have charged
        logger.exception("gateway %s failed charging invoice %s", gateway.name, invoice.id)
        result = ChargeResult(AttemptOutcome.UNKNOWN, None, type(exc).__name__)
    return settle(session, attempt, result)


def ask(session: Session, gateway: Gateway, attempt: PaymentAttempt,
        method: PaymentMethod | None) -> ChargeResult | None:
    """The gateway's answer about ``attempt``: None when it never saw the payment."""
    card = invoices.card_of(method) if method is not None else None
    try:
        return gateway.find_charge(session, reference=attempt.gateway_ref, idempotency_key=attempt.idempotency_key,
                                   card=card, since=timeutil.as_utc(attempt.created_at))
    except Exception as exc:
        logger.exception("gateway %s could not look up attempt %s", gateway.name, attempt.id)
        return ChargeResult(AttemptOutcome.UNKNOWN, attempt.gateway_ref, type(exc).__name__)


def settle(session: Session, attempt: PaymentAttempt, result: ChargeResult) -> PaymentAttempt:
    """Write what the gateway said about ``attempt`` and apply it to the invoice."""
    invoice = attempt.invoice
    attempt.outcome = result.outcome
    attempt.gateway_ref = result.reference or attempt.gateway_ref
    attempt.message = (result.message or "")[:500] or None
    if result.outcome in IN_DOUBT_OUTCOMES:
        invoice.payment_status = PaymentStatus.PROCESSING
        invoice.next_attempt_at = timeutil.now() + RECHECK_AFTER  # the tick asks again (never charges anew)
        return attempt
    attempt.settled_at = timeutil.now()
    invoices.apply_outcome(session, invoice, result, automatic=attempt.initiated_by == "tick")
    return attempt


# --- the provider's word: webhooks and the sweep ---------------------------------------------------------

def settle_from_gateway_event(session: Session, gateway_name: str, reference: str | None,
                              idempotency_key: str | None, result: ChargeResult) -> str:
    """A provider told us how a payment ended (``payment_intent.*``). Idempotent; the caller commits.

    Returns ``settled``, ``ignored`` (not ours, already settled, or the invoice is closed) or ``busy`` (a
    tick is charging that invoice right now: the provider should deliver again later).
    """
    conditions = [PaymentAttempt.gateway_ref == reference] if reference else []
    if idempotency_key:
        conditions.append(PaymentAttempt.idempotency_key == idempotency_key)
    if not conditions:
        return "ignored"
    attempt = session.scalar(select(PaymentAttempt).where(PaymentAttempt.gateway == gateway_name, or_(*conditions))
                             .order_by(PaymentAttempt.id.desc()).limit(1))
    if attempt is None:
        return "ignored"
    invoice = session.get(Invoice, attempt.invoice_id, with_for_update=True, populate_existing=True)
    if invoice.claim_token is not None and timeutil.as_utc(invoice.claimed_at) > timeutil.now() - CLAIM_STALE_AFTER:
        return "busy"
    waiting = attempt.outcome in IN_DOUBT_OUTCOMES or (
        attempt.outcome == AttemptOutcome.REQUIRES_ACTION and result.outcome != AttemptOutcome.REQUIRES_ACTION)
    if invoice.status != InvoiceStatus.OPEN or not waiting or attempt is not invoice.attempts[-1]:
        return "ignored"
    settle(session, attempt, result)
    session.flush()
    return "settled"


def settle_open_attempts(session: Session, now: datetime | None = None, batch: int = 100) -> int:
    """The sweep: ask the gateway about every attempt left in doubt. Never charges. Commits per batch."""
    now = now or timeutil.now()
    settled = 0
    token = secrets.token_hex(16)
    unclaimed = or_(Invoice.claim_token.is_(None), Invoice.claimed_at < now - CLAIM_STALE_AFTER)
    done: set[int] = set()
    while True:
        ids = session.scalars(
            select(Invoice.id)
            .where(Invoice.status == InvoiceStatus.OPEN, Invoice.payment_status == PaymentStatus.PROCESSING,
                   Invoice.updated_at <= now - SWEEP_MIN_AGE, unclaimed, Invoice.id.not_in(done or {0}))
            .order_by(Invoice.id).limit(batch).with_for_update(skip_locked=True, of=Invoice)
        ).all()
        if not ids:
            session.rollback()
            return settled
        session.execute(update(Invoice).where(Invoice.id.in_(ids), unclaimed)
                        .values(claim_token=token, claimed_at=now).execution_options(synchronize_session=False))
        session.commit()
        done.update(ids)
        for invoice in session.scalars(select(Invoice).where(Invoice.claim_token == token)):
            pending = attempt_in_doubt(invoice)
            if pending is not None:
                found = ask(session, gateways.get(invoice.mandate.gateway), pending,
                            session.get(PaymentMethod, pending.payment_method_id)
                            if pending.payment_method_id else None)
                if found is None:
                    # Nothing was charged: the next tick sends the same request again, under the same key.
                    invoice.next_attempt_at = now
                else:
                    settle(session, pending, found)
                    settled += found.outcome not in IN_DOUBT_OUTCOMES
            invoice.claim_token = None
            invoice.claimed_at = None
        session.commit()


# --- what people and the tick call ----------------------------------------------------------------------

def charge_invoice(session: Session, invoice: Invoice, *, initiated_by: str) -> PaymentAttempt:
    """Charge the mandate's card for ``invoice`` off-session and apply the outcome (at most once: charges.py)."""
    if invoice.status != InvoiceStatus.OPEN:
        raise InvoiceNotOpen()
    mandate = invoice.mandate
    method = mandate.payment_method
    if method is None:
        raise NoPaymentMethod()
    return charge(session, invoice, method, initiated_by=initiated_by)


def retry_now(session: Session, invoice: Invoice, *, initiated_by: str) -> PaymentAttempt:
    """A charge a person asked for (the customer on the invoice page, or the owner through the API)."""
    invoices.lock_for_customer(session, invoice)
    if invoice.mandate.status not in (MandateStatus.ACTIVE, MandateStatus.PAST_DUE):
        raise InvoiceNotOpen("That subscription is not active, so its invoice cannot be charged.")
    return charge_invoice(session, invoice, initiated_by=initiated_by)


def confirm_authentication(session: Session, invoice: Invoice) -> PaymentAttempt | None:
    """The customer came back from authenticating: ask the gateway how the payment ended."""
    invoices.lock_for_customer(session, invoice)
    if invoice.payment_status != PaymentStatus.REQUIRES_ACTION or not invoice.action_ref:
        return None
    result = gateways.get(invoice.mandate.gateway).confirm(session, invoice.action_ref)
    if result.outcome == AttemptOutcome.REQUIRES_ACTION:
        return None  # not authenticated yet; the page still offers the link
    return invoices.record_attempt(session, invoice, result, initiated_by="customer",
                          method=invoice.mandate.payment_method)


def settle_stripe_event(session: Session, event: dict) -> str:
    """A ``payment_intent.*`` event from Stripe settles the attempt it answers (see charges.py)."""
    intent = stripe_gateway.field(stripe_gateway.field(event, "data"), "object") or {}
    key = stripe_gateway.field(stripe_gateway.field(intent, "metadata"), "coursegate_attempt")
    return settle_from_gateway_event(session, "stripe", stripe_gateway.field(intent, "id"), key, stripe_gateway.result_of_intent(intent))
