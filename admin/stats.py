"""The dashboard's numbers and its 90-day chart: a handful of indexed aggregate queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

import timeutil
from emails.models import EmailStatus, OutboundEmail
from fulfillment import parsers
from fulfillment.models import EventStatus, WebhookEvent
from membership.models import Grant, GrantStatus, Member

# The deliveries that place an order, whatever the cart calls them.
ORDER_EVENT_TYPES = sorted({name for name, action in {**parsers.TC_ACTIONS, **parsers.GENERIC_EVENTS}.items()
                            if action == parsers.Action.ORDER_COMPLETED} | {"checkout.session.completed"})


@dataclass
class Counts:
    members: int
    active_grants: int
    orders_today: int
    emails_failed: int


def _start_of_day(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=timeutil.now().tzinfo)


def counts(session: Session) -> Counts:
    moment = timeutil.now()
    today = _start_of_day(moment.date())
    # An order is a distinct cart order processed from a delivery received today.
    orders_today = session.scalar(
        select(func.count()).select_from(
            select(WebhookEvent.integration_id, WebhookEvent.order_ref)
            .where(WebhookEvent.received_at >= today, WebhookEvent.status == EventStatus.PROCESSED,
                   WebhookEvent.event_type.in_(ORDER_EVENT_TYPES))
            .distinct().subquery()
        )
    ) or 0
    return Counts(
        members=session.scalar(select(func.count(Member.id))) or 0,
        active_grants=session.scalar(select(func.count(Grant.id)).where(Grant.gives_access_at(moment))) or 0,
        orders_today=orders_today,
        emails_failed=session.scalar(
            select(func.count(OutboundEmail.id)).where(OutboundEmail.status == EmailStatus.FAILED)) or 0,
    )


def _day(session: Session, column):
    """The UTC calendar day of a timestamp column, as ``YYYY-MM-DD`` text, on SQLite and PostgreSQL."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column)  # SQLite keeps UTC timestamps as ISO text


def _per_day(session: Session, column, since: datetime, *conditions) -> dict[str, int]:
    day = _day(session, column)
    rows = session.execute(select(day, func.count()).where(column >= since, *conditions).group_by(day))
    return {str(key): count for key, count in rows}


@dataclass
class DailySeries:
    days: list[date]
    new_members: list[int]
    revocations: list[int]


def daily_series(session: Session, days: int = 90) -> DailySeries:
    """New members and revoked grants per UTC day, the last ``days`` days up to and including today."""
    today = timeutil.now().date()
    first = today - timedelta(days=days - 1)
    since = _start_of_day(first)
    joined = _per_day(session, Member.created_at, since)
    revoked = _per_day(session, Grant.revoked_at, since, Grant.status == GrantStatus.REVOKED)
    span = [first + timedelta(days=n) for n in range(days)]
    return DailySeries(days=span, new_members=[joined.get(d.isoformat(), 0) for d in span],
                       revocations=[revoked.get(d.isoformat(), 0) for d in span])
