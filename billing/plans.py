"""Plans: what a customer can subscribe to. Price and interval never change after creation."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

import timeutil
from billing import mandates
from billing.errors import PlanDeleted, PlanImmutable, PlanNotFound
from billing.models import LIVE_MANDATE_STATUSES, Mandate, Plan, PlanState
from membership.errors import LevelNotFound
from membership.models import Level

IMMUTABLE_FIELDS = ("amount", "currency", "interval_unit", "interval_count")


def get_plan(session: Session, plan_id: int) -> Plan:
    plan = session.get(Plan, plan_id)
    if plan is None:
        raise PlanNotFound()
    return plan


def create_plan(session: Session, *, name: str, level_id: int, amount: int, currency: str, interval_unit: str,
                interval_count: int = 1, max_pause_days: int | None = None, access_during_pause: bool = False) -> Plan:
    if session.get(Level, level_id) is None:
        raise LevelNotFound()
    plan = Plan(name=name.strip(), level_id=level_id, amount=amount, currency=currency.lower(),
                interval_unit=interval_unit, interval_count=interval_count, state=PlanState.ACTIVE,
                max_pause_days=max_pause_days, access_during_pause=access_during_pause)
    session.add(plan)
    session.flush()
    return plan


def update_plan(session: Session, plan: Plan, changes: dict) -> Plan:
    """Only the name may change; price and interval are refused with ``plan_immutable``."""
    touched = sorted(f for f in IMMUTABLE_FIELDS if f in changes and changes[f] != getattr(plan, f))
    if touched:
        raise PlanImmutable(errors={field: ["Cannot change after creation."] for field in touched})
    if plan.state == PlanState.DELETED:
        raise PlanDeleted()
    if "name" in changes:
        plan.name = changes["name"].strip()
    for field in ("max_pause_days", "access_during_pause"):  # applies to pauses asked for from now on
        if field in changes:
            setattr(plan, field, changes[field])
    session.flush()
    return plan


def pause_plan(session: Session, plan: Plan) -> Plan:
    """No new sign-ups; existing mandates keep billing."""
    if plan.state == PlanState.DELETED:
        raise PlanDeleted()
    plan.state = PlanState.PAUSED
    session.flush()
    return plan


def resume_plan(session: Session, plan: Plan) -> Plan:
    if plan.state == PlanState.DELETED:
        raise PlanDeleted()
    plan.state = PlanState.ACTIVE
    session.flush()
    return plan


def delete_plan(session: Session, plan: Plan) -> Plan:
    """Terminal: every live mandate is cancelled (``plan_deleted``), its open invoices voided, its customer emailed."""
    if plan.state == PlanState.DELETED:
        return plan
    plan.state = PlanState.DELETED
    plan.deleted_at = timeutil.now()
    live = session.scalars(
        select(Mandate).where(Mandate.plan_id == plan.id, Mandate.status.in_(LIVE_MANDATE_STATUSES))
        .order_by(Mandate.id)
    ).all()
    for mandate in live:
        mandates.cancel_mandate(session, mandate, reason="plan_deleted")
    session.flush()
    return plan
