"""The subscriptions a cart bills for a member, as far as the orders we received tell: what was bought, when,
and where it stands now (from the grants the orders opened). For the member's billing page: the cart, not us,
holds the card and the schedule, so each row links to where the member manages it (the integration's
``manage_subscriptions_url``, e.g. ThriveCart's customer hub)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from errors import CoursegateError
from fulfillment import services
from fulfillment.models import EventStatus, Integration, WebhookEvent
from membership.models import Grant, GrantSourceKind, GrantStatus, Member

logger = logging.getLogger(__name__)

# Grant states that mean the cart still bills (or pauses) the subscription; worst first wins for the row.
LIVE = (GrantStatus.PAST_DUE, GrantStatus.PAUSED, GrantStatus.ACTIVE)


@dataclass(frozen=True)
class CartSubscription:
    subscription_id: str
    product_name: str
    cart: str
    started_at: date | None
    status: str  # active | past_due | paused | cancelled (access until the end of the paid period)
    access_until: date | None
    manage_url: str | None
    source: str = "cart"
    # The shape the other billing rows share; a cart does not tell us these.
    renews_on: date | None = None
    amount: None = None
    currency: str = ""
    interval_unit: str | None = None
    interval_count: int = 1
    card: None = None


def _line_names(session: Session, member_grants: list[Grant]) -> dict[tuple[int, str, str], str]:
    """(integration, order, line) -> the product's name as the cart sent it in the order."""
    orders = {(g.integration_id, g.order_ref) for g in member_grants if g.order_ref}
    if not orders:
        return {}
    rows = session.scalars(select(WebhookEvent).where(
        WebhookEvent.status.in_([EventStatus.PROCESSED, EventStatus.NEEDS_ATTENTION]),
        or_(*[and_(WebhookEvent.integration_id == i, WebhookEvent.order_ref == o) for i, o in orders]))
        .order_by(WebhookEvent.id))
    names = {}
    for row in rows:
        try:
            event = services.parse_stored(row)
        except (CoursegateError, ValueError, KeyError):  # a stored body we can no longer read: use the level
            logger.info("event %s: stored body not readable for product names", row.id)
            continue
        for line in event.lines:
            if line.name:
                names.setdefault((row.integration_id, row.order_ref, line.line_ref), line.name)
    return names


def rows_for_member(session: Session, member: Member) -> list[CartSubscription]:
    """One row per cart subscription the member still has (billing, past due, paused or cancelled with
    access to the end of the period), oldest first."""
    grants = session.scalars(select(Grant).where(
        Grant.member_id == member.id, Grant.source_kind == GrantSourceKind.ORDER,
        Grant.subscription_ref.is_not(None), Grant.integration_id.is_not(None),
        Grant.status.in_([str(s) for s in LIVE])).order_by(Grant.starts_at, Grant.id)).all()
    if not grants:
        return []
    names = _line_names(session, grants)
    grouped: dict[tuple[int, str], list[Grant]] = {}
    for grant in grants:
        grouped.setdefault((grant.integration_id, grant.subscription_ref), []).append(grant)
    rows = []
    for (integration_id, subscription_ref), of_sub in grouped.items():
        integration = session.get(Integration, integration_id)
        first = of_sub[0]
        status = next(s for s in LIVE if any(g.status == s for g in of_sub))
        revoke_at = min((g.revoke_at for g in of_sub if g.revoke_at), default=None)
        if status == GrantStatus.ACTIVE and revoke_at and all(g.revoke_at for g in of_sub):
            status = "cancelled"
        product = names.get((integration_id, first.order_ref, first.line_ref)) or first.level.name
        rows.append(CartSubscription(
            subscription_id=subscription_ref, product_name=product, cart=integration.name,
            started_at=first.starts_at.date(), status=str(status),
            access_until=revoke_at.date() if revoke_at else None,
            manage_url=integration.manage_subscriptions_url or integration.card_update_url))
    return rows
