"""A member pauses their own subscription (ours, not a cart's) where its plan allows, and resumes it.

A pause of N days moves the subscription's next billing date N days later, so no invoice is issued or charged
during the pause and the days already paid for are kept for after it. An invoice already issued for the next
period (48 hours ahead) is voided and issued again when the pause ends. Access follows the plan: with
``access_during_pause`` the level stays open through the pause, else its grant is ``paused`` until the resume.
Resuming early gives back the unused days (the next bill comes sooner); a pause that runs out resumes by
itself on the billing tick. Automations and outgoing webhooks see ``subscription_paused`` and
``subscription_resumed``; a cancellation whose access runs to the end of the period is ``cancel_scheduled``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

import signals
import timeutil
from billing import invoices
from billing.errors import NotPaused, PauseNotAllowed
from billing.models import Invoice, InvoiceStatus, Mandate, MandateStatus
from errors import Unprocessable
from membership import grants
from membership.models import Grant, GrantStatus


@dataclass(frozen=True)
class PauseOffer:
    max_days: int
    access_during_pause: bool


def offer(mandate: Mandate) -> PauseOffer | None:
    """What the member may do now: None when the plan offers no pause or the subscription cannot pause."""
    plan = mandate.plan
    if not plan.max_pause_days or mandate.status != MandateStatus.ACTIVE or mandate.paused_at is not None:
        return None
    return PauseOffer(plan.max_pause_days, plan.access_during_pause)


def _event(session: Session, signal, mandate: Mandate, grant: Grant | None, at: datetime, **context) -> None:
    signal.send(session, member=mandate.member, level=mandate.plan.level_id,
                event_key=f"mandate:{mandate.id}:{signal.name}:{at.isoformat()}",
                context={"mandate_id": mandate.id, "plan_id": mandate.plan_id,
                         "grant_ids": [grant.id] if grant is not None else [], **context})


def pause(session: Session, mandate: Mandate, days: int, *, now: datetime | None = None) -> Mandate:
    now = now or timeutil.now()
    allowed = offer(mandate)
    if allowed is None:
        if mandate.paused_at is not None:
            raise PauseNotAllowed("This subscription is already paused.")
        raise PauseNotAllowed()
    if not 1 <= days <= allowed.max_days:
        raise Unprocessable(f"Pause for 1 to {allowed.max_days} days.", code="pause_too_long",
                            errors={"days": [f"Between 1 and {allowed.max_days}."]})
    length = timedelta(days=days)
    issued = session.scalars(select(Invoice).where(Invoice.mandate_id == mandate.id,
                                                   Invoice.status == InvoiceStatus.OPEN)
                             .order_by(Invoice.period_start).with_for_update()).all()
    if issued:  # billed ahead for the next period: that period now starts after the pause
        mandate.current_period_end = issued[0].period_start
        for invoice in issued:
            invoices.void_invoice(session, invoice, "paused")
    mandate.current_period_end = mandate.current_period_end + length
    mandate.paused_at, mandate.pause_until = now, now + length
    grant = invoices.subscription_grant(session, mandate.id)
    if grant is not None:
        grants.shift(session, [grant], length)
        if not allowed.access_during_pause and grant.status == GrantStatus.ACTIVE:
            grants.pause(session, [grant])
    session.flush()
    _event(session, signals.subscription_paused, mandate, grant, now,
           pause_until=mandate.pause_until.isoformat(), access_during_pause=allowed.access_during_pause)
    return mandate


def resume(session: Session, mandate: Mandate, *, now: datetime | None = None) -> Mandate:
    now = now or timeutil.now()
    if mandate.paused_at is None or mandate.pause_until is None:
        raise NotPaused()
    unused = max(mandate.pause_until - now, timedelta(0))
    if mandate.current_period_end is not None:
        mandate.current_period_end = mandate.current_period_end - unused
    grant = invoices.subscription_grant(session, mandate.id)
    if grant is not None:
        grants.shift(session, [grant], -unused)
        grants.resume(session, [grant])
    mandate.paused_at = mandate.pause_until = None
    session.flush()
    _event(session, signals.subscription_resumed, mandate, grant, now, early=unused > timedelta(0))
    return mandate


def resume_due(session: Session, now: datetime | None = None) -> int:
    """Resume every pause that has run out (the billing tick calls this before issuing invoices)."""
    now = now or timeutil.now()
    due = session.scalars(select(Mandate).where(Mandate.pause_until.is_not(None), Mandate.pause_until <= now)
                          .order_by(Mandate.id).with_for_update(skip_locked=True)).all()
    for mandate in due:
        resume(session, mandate, now=now)
    return len(due)


def cancel_scheduled(session: Session, mandate: Mandate, access_until: datetime | None) -> None:
    """A cancellation that keeps access to the end of the paid period: tell automations and webhooks."""
    if access_until is not None and access_until > timeutil.now():
        _event(session, signals.cancel_scheduled, mandate, invoices.subscription_grant(session, mandate.id),
               mandate.cancelled_at or timeutil.now(), access_until=access_until.isoformat())
