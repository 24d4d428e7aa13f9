"""Mandates: the customer's signed authorisation to charge a card for one plan.

Only the customer creates one, by signing up on ``/plans/<id>``; amount, currency and interval are copied
from the plan then and never change. The owner can read and cancel; the customer can cancel their own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

import timeutil
from billing import charges, gateways, invoices, notify, pauses
from billing.errors import MandateNotCancellable, MandateNotFound, MandateNotPending, PlanNotAvailable
from billing.gateways.base import CardDetails
from billing.models import (LIVE_MANDATE_STATUSES, Invoice, InvoiceStatus, Mandate, MandateStatus,
                            PaymentMethod, Plan, PlanState)
from billing.periods import describe, format_money
from membership import services as membership_services
from membership import grants
from membership.models import Member


@dataclass
class SignUp:
    mandate: Mandate
    member: Member
    member_created: bool
    redirect_url: str


def get_mandate(session: Session, mandate_id: int) -> Mandate:
    mandate = session.get(Mandate, mandate_id)
    if mandate is None:
        raise MandateNotFound()
    return mandate


def authorisation_text(plan: Plan) -> str:
    site = current_app.config["SITE_NAME"]
    return (f"I authorise {site} to charge {format_money(plan.amount, plan.currency)} to my card now and "
            f"every {describe(plan.interval_unit, plan.interval_count)} after that for {plan.name}, "
            f"until I cancel. I can cancel at any time from my account; my access then runs to the end of "
            f"the period I have paid for.")


def sign_up(session: Session, plan: Plan, *, email: str, name: str = "", return_url: str,
            cancel_url: str) -> SignUp:
    """Start a mandate for ``email`` on ``plan``: pending until the customer authorises their card."""
    if plan.state != PlanState.ACTIVE:
        raise PlanNotAvailable()
    member, created = membership_services.find_or_create_member(session, email, name=name)
    gateway = gateways.get()
    mandate = Mandate(member=member, plan=plan, gateway=gateway.name, amount=plan.amount, currency=plan.currency,
                      interval_unit=plan.interval_unit, interval_count=plan.interval_count,
                      authorisation_text=authorisation_text(plan), status=MandateStatus.PENDING_AUTHORISATION,
                      created_at=timeutil.now())
    session.add(mandate)
    session.flush()
    customer_ref = session.scalar(
        select(PaymentMethod.customer_ref)
        .where(PaymentMethod.member_id == member.id, PaymentMethod.gateway == gateway.name,
               PaymentMethod.customer_ref.is_not(None))
        .order_by(PaymentMethod.id.desc()).limit(1)
    )
    start = gateway.start_setup(session, email=member.email, customer_ref=customer_ref,
                                description=mandate.authorisation_text,
                                return_url=return_url.format(mandate_id=mandate.id),
                                cancel_url=cancel_url)
    mandate.gateway_ref = start.reference
    session.flush()
    if created:
        membership_services.queue_welcome_email(session, member, [plan.level])
    return SignUp(mandate, member, created, start.redirect_url)


def save_payment_method(session: Session, member: Member, gateway_name: str, card: CardDetails) -> PaymentMethod:
    method = session.scalar(select(PaymentMethod).where(PaymentMethod.gateway == gateway_name,
                                                        PaymentMethod.token == card.token))
    if method is None:
        method = PaymentMethod(member_id=member.id, gateway=gateway_name, token=card.token,
                               customer_ref=card.customer_ref, brand=card.brand, last4=card.last4,
                               exp_month=card.exp_month, exp_year=card.exp_year, created_at=timeutil.now())
        session.add(method)
        session.flush()
    return method


def complete_signing(session: Session, mandate: Mandate, params: dict) -> Invoice:
    """The customer authorised their card: the mandate is active and its first period is invoiced and charged."""
    session.refresh(mandate, with_for_update=True)
    if mandate.status != MandateStatus.PENDING_AUTHORISATION:
        raise MandateNotPending()
    card = gateways.get(mandate.gateway).complete_setup(session, mandate.gateway_ref or "", params)
    mandate.payment_method = save_payment_method(session, mandate.member, mandate.gateway, card)
    now = timeutil.now()
    mandate.status = MandateStatus.ACTIVE
    mandate.signed_at = now
    session.flush()
    # The first period is charged right away, so there is no "coming up" email: the receipt says it all.
    invoice = invoices.issue_invoice(session, mandate, now, notify_customer=False)
    charges.charge_invoice(session, invoice, initiated_by="customer")
    return invoice


def replace_card(session: Session, mandate: Mandate, reference: str, params: dict) -> PaymentMethod:
    """The customer authorised a new card for this mandate (from the invoice page)."""
    card = gateways.get(mandate.gateway).complete_setup(session, reference, params)
    method = save_payment_method(session, mandate.member, mandate.gateway, card)
    mandate.payment_method = method
    session.flush()
    return method


def cancel_mandate(session: Session, mandate: Mandate, *, reason: str) -> Mandate:
    """Stop billing. Open invoices are voided; access runs to the end of the period already paid for."""
    if mandate.status not in LIVE_MANDATE_STATUSES:
        raise MandateNotCancellable()
    was_pending = mandate.status == MandateStatus.PENDING_AUTHORISATION
    now = timeutil.now()
    mandate.status = MandateStatus.CANCELLED
    mandate.cancelled_at = now
    mandate.cancel_reason = reason
    open_invoices = session.scalars(select(Invoice).where(Invoice.mandate_id == mandate.id,
                                                          Invoice.status == InvoiceStatus.OPEN)
                                    .with_for_update()).all()
    for invoice in open_invoices:
        invoices.void_invoice(session, invoice, reason)
    grant = invoices.subscription_grant(session, mandate.id)
    access_until: datetime | None = None
    if grant is not None:
        # A past-due period was never paid for: the courtesy grace ends with the mandate.
        grants.end_grace(session, [grant], at=now)
        access_until = grant.ends_at
    session.flush()
    if not was_pending:
        notify.cancelled(session, mandate, mandate.member, mandate.plan.name, access_until)
        pauses.cancel_scheduled(session, mandate, access_until)
    return mandate
