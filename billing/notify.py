"""The billing emails. Each is queued once per event (dedupe keys name the invoice or mandate).

Inside :func:`batched` (the tick), emails are collected and queued with one INSERT per batch.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from sqlalchemy.orm import Session

from billing import links
from billing.models import Invoice, Mandate
from billing.periods import describe, format_money
from emails import services as email_services
from membership.models import Member


_OUTBOX = "billing_outbox"


@contextlib.contextmanager
def batched(session: Session) -> Iterator[None]:
    """Collect the emails queued inside the block; they are written when it ends (before the commit)."""
    session.info[_OUTBOX] = []
    try:
        yield
        email_services.enqueue_many(session, session.info[_OUTBOX])
    finally:
        session.info.pop(_OUTBOX, None)


def _send(session: Session, template: str, member: Member, context: dict, dedupe_key: str) -> None:
    outbox = session.info.get(_OUTBOX)
    if outbox is not None:
        outbox.append((template, member.email, context, dedupe_key, member.id))
    else:
        email_services.enqueue(session, template, member.email, context, dedupe_key=dedupe_key,
                               member_id=member.id)


def _base(member: Member, plan_name: str) -> dict:
    return {"member_name": member.name or "there", "plan_name": plan_name}


def _invoice_context(invoice: Invoice, member: Member, plan_name: str, level_name: str | None = None) -> dict:
    """``level_name``: the access level the invoice renews (looked up from the plan unless given)."""
    return {
        **_base(member, plan_name),
        "level_name": level_name or invoice.mandate.plan.level.name,
        "invoice_number": invoice.number,
        "amount": format_money(invoice.amount, invoice.currency),
        "due_date": f"{invoice.due_at:%d %B %Y}",
        "period": f"{invoice.period_start:%d %b %Y} to {invoice.period_end:%d %b %Y}",
        "invoice_url": links.invoice_url(invoice.id, member.id),
    }


def invoice_issued(session: Session, invoice: Invoice, member: Member, plan_name: str,
                   level_name: str | None = None) -> None:
    _send(session, "invoice_issued", member, _invoice_context(invoice, member, plan_name, level_name),
          f"invoice_issued:{invoice.id}")


def receipt(session: Session, invoice: Invoice, member: Member, plan_name: str) -> None:
    context = {**_invoice_context(invoice, member, plan_name),
               "paid_date": f"{invoice.paid_at:%d %B %Y}", "access_until": f"{invoice.period_end:%d %B %Y}"}
    _send(session, "payment_receipt", member, context, f"payment_receipt:{invoice.id}")


def payment_failed(session: Session, invoice: Invoice, member: Member, plan_name: str, grace_days: int,
                   message: str | None) -> None:
    context = {**_invoice_context(invoice, member, plan_name), "grace_days": grace_days,
               "reason": message or "The card was declined."}
    _send(session, "invoice_payment_failed", member, context, f"invoice_payment_failed:{invoice.id}")


def action_required(session: Session, invoice: Invoice, member: Member, plan_name: str) -> None:
    _send(session, "invoice_action_required", member, _invoice_context(invoice, member, plan_name),
          f"invoice_action_required:{invoice.id}:{invoice.action_ref}")


def unpaid(session: Session, invoice: Invoice, member: Member, plan_name: str) -> None:
    _send(session, "subscription_unpaid", member, _invoice_context(invoice, member, plan_name),
          f"subscription_unpaid:{invoice.id}")


def cancelled(session: Session, mandate: Mandate, member: Member, plan_name: str, access_until) -> None:
    context = {**_base(member, plan_name), "reason": mandate.cancel_reason,
               "amount": format_money(mandate.amount, mandate.currency),
               "interval": describe(mandate.interval_unit, mandate.interval_count),
               "access_until": f"{access_until:%d %B %Y}" if access_until else ""}
    _send(session, "subscription_cancelled", member, context, f"subscription_cancelled:{mandate.id}")
