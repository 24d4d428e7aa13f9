"""Read-only helpers for pages: what the account page shows about a member's subscriptions."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from billing.models import LIVE_MANDATE_STATUSES, Invoice, Mandate, MandateStatus
from billing.periods import describe, format_money
from extensions import db


@dataclass
class MandateRow:
    id: int
    plan_name: str
    price: str
    status: str
    card: str | None
    next_charge: str | None
    cancellable: bool
    cancel_reason: str | None


@dataclass
class InvoiceRow:
    id: int
    number: str
    amount: str
    status: str
    payment_status: str
    due: str
    needs_attention: bool


def account_summary(session: Session, member_id: int) -> dict:
    """``{"mandates": [MandateRow], "invoices": [InvoiceRow]}``, newest first (the last 24 invoices)."""
    mandates = session.scalars(
        select(Mandate).where(Mandate.member_id == member_id,
                              Mandate.status != MandateStatus.EXPIRED)
        .options(joinedload(Mandate.plan), joinedload(Mandate.payment_method))
        .order_by(Mandate.id.desc())
    ).all()
    invoices = session.scalars(
        select(Invoice).where(Invoice.member_id == member_id).order_by(Invoice.due_at.desc(), Invoice.id.desc())
        .limit(24)
    ).all()
    return {
        "mandates": [
            MandateRow(
                id=m.id, plan_name=m.plan.name,
                price=f"{format_money(m.amount, m.currency)} every {describe(m.interval_unit, m.interval_count)}",
                status=m.status,
                card=(f"{m.payment_method.brand.title()} ending {m.payment_method.last4}"
                      if m.payment_method else None),
                next_charge=(f"{m.current_period_end:%d %B %Y}"
                             if m.current_period_end and m.status == MandateStatus.ACTIVE else None),
                cancellable=m.status in LIVE_MANDATE_STATUSES and m.status != MandateStatus.PENDING_AUTHORISATION,
                cancel_reason=m.cancel_reason,
            ) for m in mandates
        ],
        "invoices": [
            InvoiceRow(id=i.id, number=i.number, amount=format_money(i.amount, i.currency), status=i.status,
                       payment_status=i.payment_status, due=f"{i.due_at:%d %b %Y}",
                       needs_attention=i.status == "open" and i.payment_status in ("failed", "requires_action"))
            for i in invoices
        ],
    }


def account_summary_for_template(member_id: int) -> dict:
    return account_summary(db.session, member_id)
