"""Card updates for our own subscriptions: a new card (or expiry) reaches every mandate that used the old one.

The new card comes from the gateway's hosted capture (``gateway.start_setup`` / ``complete_setup``), so no
card number passes through us: we keep the token, brand, last 4 and expiry. Every live mandate of the member
on the old card is re-pointed; a past-due mandate's open invoice is charged again at once. Each change is
recorded with ``keap.card_changes.record_card_change(source="own")`` (which emails the confirmation) and fires
the ``card_updated`` automation trigger. Services flush; the caller commits.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from types import SimpleNamespace

from sqlalchemy import select
from sqlalchemy.orm import Session

import signals
import timeutil
from billing import charges, gateways, invoices, mandates
from billing.errors import ExpiryUpdateUnsupported, InvalidExpiry, PaymentMethodNotFound
from billing.gateways.base import CardDetails
from billing.models import (LIVE_MANDATE_STATUSES, Invoice, InvoiceStatus, Mandate, MandateStatus,
                            PaymentAttempt, PaymentMethod)
from errors import CoursegateError
from keap.card_changes import record_card_change
from keap.models import CardChange, CardChangedBy
from membership.models import Member

logger = logging.getLogger(__name__)


@dataclass
class CardUpdate:
    method: PaymentMethod
    mandates: list[Mandate]
    change: CardChange
    attempts: list[PaymentAttempt] = field(default_factory=list)


def methods_on_file(session: Session, member: Member) -> list[PaymentMethod]:
    """The member's current payment methods (not replaced by a newer card), oldest first."""
    return list(session.scalars(
        select(PaymentMethod).where(PaymentMethod.member_id == member.id, PaymentMethod.replaced_at.is_(None))
        .order_by(PaymentMethod.id)))


def method_of(session: Session, member: Member, method_id: int) -> PaymentMethod:
    """One of the member's payment methods; 404 for anyone else's (do not confirm it exists)."""
    method = session.get(PaymentMethod, method_id)
    if method is None or method.member_id != member.id:
        raise PaymentMethodNotFound()
    return method


def mandates_on(session: Session, member: Member, method: PaymentMethod | None) -> list[Mandate]:
    """The member's live mandates charged to ``method`` (or, for None, live mandates without a card)."""
    query = select(Mandate).where(Mandate.member_id == member.id, Mandate.status.in_(LIVE_MANDATE_STATUSES),
                                  Mandate.status != MandateStatus.PENDING_AUTHORISATION)
    query = query.where(Mandate.payment_method_id == method.id if method
                        else Mandate.payment_method_id.is_(None))
    return list(session.scalars(query.order_by(Mandate.id).with_for_update()))


def _retry_past_due(session: Session, affected: list[Mandate], initiated_by: str) -> list[PaymentAttempt]:
    attempts = []
    for mandate in affected:
        if mandate.status != MandateStatus.PAST_DUE:
            continue
        open_invoices = session.scalars(
            select(Invoice).where(Invoice.mandate_id == mandate.id, Invoice.status == InvoiceStatus.OPEN,
                                  Invoice.due_at <= timeutil.now()).order_by(Invoice.due_at)).all()
        for invoice in open_invoices:
            try:
                attempts.append(charges.retry_now(session, invoice, initiated_by=initiated_by))
            except CoursegateError as exc:  # a tick is charging it right now, or it closed meanwhile
                logger.info("invoice %s not retried after a card change: %s", invoice.id, exc.code)
    return attempts


def _record(session: Session, member: Member, affected: list[Mandate], *, old: PaymentMethod | None,
            new: PaymentMethod, changed_by: str, changed_by_ref: str | None) -> CardChange:
    change = record_card_change(
        session, member, source="own", subscription_refs=[str(m.id) for m in affected],
        subscription_names=[m.plan.name for m in affected] or ["Your saved card (no subscription yet)"],
        new_payment_method_ref=str(new.id), new_brand=new.brand, new_last4=new.last4,
        new_exp_month=new.exp_month, new_exp_year=new.exp_year,
        old_payment_method_ref=str(old.id) if old else None, old_brand=old.brand if old else None,
        old_last4=old.last4 if old else None, changed_by=changed_by, changed_by_ref=changed_by_ref,
    )
    signals.card_updated.send(session, member=member, event_key=f"card_updated:own:{change.id}",
                              context={"source": "own", "card_change_id": change.id,
                                       "mandate_ids": [m.id for m in affected], "brand": new.brand,
                                       "last4": new.last4})
    return change


def replace_card(session: Session, member: Member, old: PaymentMethod | None, gateway_name: str,
                 card: CardDetails, *, changed_by: str = CardChangedBy.MEMBER,
                 changed_by_ref: str | None = None) -> CardUpdate:
    """Save the card the gateway captured and move every live mandate on ``old`` to it.

    ``old`` None adds a first payment method. Past-due mandates' open invoices are charged again at once."""
    new = mandates.save_payment_method(session, member, gateway_name, card)
    affected = mandates_on(session, member, old)
    for mandate in affected:
        mandate.payment_method = new
    if old is not None and old.id != new.id:
        old.replaced_at = timeutil.now()
    new.replaced_at = None
    session.flush()
    change = _record(session, member, affected, old=old, new=new, changed_by=changed_by,
                     changed_by_ref=changed_by_ref)
    initiated_by = "owner" if changed_by == CardChangedBy.OWNER else "customer"
    attempts = _retry_past_due(session, affected, initiated_by)
    return CardUpdate(method=new, mandates=affected, change=change, attempts=attempts)


def supports_expiry_update(method: PaymentMethod) -> bool:
    try:
        return gateways.get(method.gateway).supports_expiry_update
    except LookupError:
        return False


def update_expiry(session: Session, member: Member, method: PaymentMethod, exp_month: int, exp_year: int, *,
                  changed_by: str = CardChangedBy.MEMBER, changed_by_ref: str | None = None) -> CardUpdate:
    """Keep the card, change its expiry (where the gateway allows it)."""
    today = timeutil.now().date()
    if not (1 <= exp_month <= 12) or not (today.year <= exp_year <= today.year + 30) \
            or date(exp_year, exp_month, 1) < today.replace(day=1):
        raise InvalidExpiry()
    gateway = gateways.get(method.gateway)
    if not gateway.supports_expiry_update:
        raise ExpiryUpdateUnsupported()
    old_snapshot = SimpleNamespace(id=method.id, brand=method.brand, last4=method.last4)
    card = gateway.update_expiry(session, invoices.card_of(method), exp_month, exp_year)
    method.exp_month, method.exp_year = card.exp_month, card.exp_year
    affected = mandates_on(session, member, method)
    session.flush()
    change = _record(session, member, affected, old=old_snapshot, new=method, changed_by=changed_by,
                     changed_by_ref=changed_by_ref)
    initiated_by = "owner" if changed_by == CardChangedBy.OWNER else "customer"
    return CardUpdate(method=method, mandates=affected, change=change,
                      attempts=_retry_past_due(session, affected, initiated_by))
