"""The billing emails. Each is queued once per event (dedupe keys name the invoice or mandate)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from billing import links
from billing.models import Invoice, Mandate
from billing.periods import describe, format_money
from emails import services as email_services
from membership.models import Member


def _base(member: Member, plan_name: str) -> dict:
    return {"member_name": member.name or "there", "plan_name": plan_name}


def _invoice_context(invoice: Invoice, member: Member, plan_name: str) -> dict:
    return {
        **_base(member, plan_name),
        "invoice_number": invoice.number,
        "amount": format_money(invoice.amount, invoice.currency),
        "due_date": f"{invoice.due_at:%d %B %Y}",
        "period": f"{invoice.period_start:%d %b %Y} to {invoice.period_end:%d %b %Y}",
        "invoice_url": links.invoice_url(invoice.id, member.id),
    }


def invoice_issued(session: Session, invoice: Invoice, member: Member, plan_name: str) -> None:
    email_services.enqueue(session, "invoice_issued", member.email, _invoice_context(invoice, member, plan_name),
                           dedupe_key=f"invoice_issued:{invoice.id}", member_id=member.id)


def receipt(session: Session, invoice: Invoice, member: Member, plan_name: str) -> None:
    context = {**_invoice_context(invoice, member, plan_name),
               "paid_date": f"{invoice.paid_at:%d %B %Y}", "access_until": f"{invoice.period_end:%d %B %Y}"}
    email_services.enqueue(session, "payment_receipt", member.email, context,
                           dedupe_key=f"payment_receipt:{invoice.id}", member_id=member.id)


def payment_failed(session: Session, invoice: Invoice, member: Member, plan_name: str, grace_days: int,
                   message: str | None) -> None:
    context = {**_invoice_context(invoice, member, plan_name), "grace_days": grace_days,
               "reason": message or "The card was declined."}
    email_services.enqueue(session, "invoice_payment_failed", member.email, context,
                           dedupe_key=f"invoice_payment_failed:{invoice.id}", member_id=member.id)


def action_required(session: Session, invoice: Invoice, member: Member, plan_name: str) -> None:
    email_services.enqueue(session, "invoice_action_required", member.email,
                           _invoice_context(invoice, member, plan_name),
                           dedupe_key=f"invoice_action_required:{invoice.id}:{invoice.action_ref}",
                           member_id=member.id)


def unpaid(session: Session, invoice: Invoice, member: Member, plan_name: str) -> None:
    email_services.enqueue(session, "subscription_unpaid", member.email,
                           _invoice_context(invoice, member, plan_name),
                           dedupe_key=f"subscription_unpaid:{invoice.id}", member_id=member.id)


def cancelled(session: Session, mandate: Mandate, member: Member, plan_name: str, access_until) -> None:
    context = {**_base(member, plan_name), "reason": mandate.cancel_reason,
               "amount": format_money(mandate.amount, mandate.currency),
               "interval": describe(mandate.interval_unit, mandate.interval_count),
               "access_until": f"{access_until:%d %B %Y}" if access_until else ""}
    email_services.enqueue(session, "subscription_cancelled", member.email, context,
                           dedupe_key=f"subscription_cancelled:{mandate.id}", member_id=member.id)
