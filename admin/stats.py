"""The dashboard's numbers and its 90-day chart: a handful of indexed aggregate queries."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

import timeutil
from emails.models import EmailStatus, OutboundEmail
from fulfillment import parsers
from fulfillment.models import EventStatus, FulfillmentRule, Integration, WebhookEvent
from membership.models import Course, CourseStatus, Grant, GrantStatus, Level, Member

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


def orders_today_conditions() -> list:
    """The deliveries the "orders today" figure counts: processed orders received since midnight (UTC)."""
    today = _start_of_day(timeutil.now().date())
    return [WebhookEvent.received_at >= today, WebhookEvent.status == EventStatus.PROCESSED,
            WebhookEvent.event_type.in_(ORDER_EVENT_TYPES)]


def active_grants_per_level(session: Session) -> dict[int, int]:
    rows = session.execute(select(Grant.level_id, func.count(Grant.id))
                           .where(Grant.gives_access_at(timeutil.now())).group_by(Grant.level_id))
    return {level_id: count for level_id, count in rows}


def counts(session: Session) -> Counts:
    moment = timeutil.now()
    # An order is a distinct cart order processed from a delivery received today.
    orders_today = session.scalar(
        select(func.count()).select_from(
            select(WebhookEvent.integration_id, WebhookEvent.order_ref)
            .where(*orders_today_conditions())
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


# --- getting started -----------------------------------------------------------------------------------

@dataclass
class Step:
    key: str
    label: str
    done: bool
    hint: str


def getting_started(session: Session) -> list[Step]:
    """The five steps from an empty install to a working cart, each done or not, in order."""
    def exists(query) -> bool:
        return session.scalar(select(query.exists())) or False

    return [
        Step("course", "Publish a course", exists(select(Course.id).where(Course.status == CourseStatus.PUBLISHED)),
             "A course is what members get into; carts can be connected once one is published."),
        Step("level", "Make a level", exists(select(Level.id)),
             "A level bundles the courses a purchase unlocks, for life or for a number of days."),
        Step("cart", "Connect a cart", exists(select(Integration.id)),
             "Paste the webhook URL Coursegate gives you into your cart."),
        Step("product", "Map a product", exists(select(FulfillmentRule.id)),
             "Say which level(s) buying a product unlocks."),
        Step("delivery", "Send a test delivery", exists(select(WebhookEvent.id)),
             "A test order from the integration's page (or a real one from the cart) shows the whole path works."),
    ]
