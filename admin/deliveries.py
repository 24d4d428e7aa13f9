"""What the admin reads out of stored cart deliveries: the names carts gave their products, and what one
delivery did (member, grants, emails, tags, unmapped items).

Read-side only: nothing records "this grant came from event #41", so a delivery's effects are found by the
references it carries (integration + order id, the buyer's email) and the moment it was processed.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from emails.models import OutboundEmail
from errors import CoursegateError
from fulfillment import parsers, rules
from fulfillment import services as fulfillment
from fulfillment.models import EventStatus, Integration, WebhookEvent
from membership.models import Grant, Member
from membership.tags import MemberTag

# Deliveries read to name products: the newest ones hold the names the cart uses now.
NAME_SCAN_LIMIT = 300
# Processing runs inside the request that received (or replayed) the delivery: what it did is stamped within
# this span before ``processed_at``.
PROCESSING_SPAN = timedelta(seconds=120)
SLACK = timedelta(seconds=2)  # emails and tags stamped just after ``processed_at``, in the same transaction


def _parsed(row: WebhookEvent) -> parsers.OrderEvent | None:
    try:
        return fulfillment.parse_stored(row)
    except (CoursegateError, ValueError, KeyError, TypeError):
        return None


def product_names(session: Session, integration: Integration) -> dict[tuple[str, str], str]:
    """(item type, product id) -> the name the cart sent for it most recently, e.g.
    ``("product", "12") -> "Mobile & Universal App Pro"``. Items no delivery named are absent."""
    names: dict[tuple[str, str], str] = {}
    rows = session.scalars(select(WebhookEvent).where(WebhookEvent.integration_id == integration.id)
                           .order_by(WebhookEvent.id.desc()).limit(NAME_SCAN_LIMIT))
    for row in rows:
        event = _parsed(row)
        for line in event.lines if event else []:
            name = html.unescape(line.name or "").strip()
            if name:
                names.setdefault((line.item_type, line.product_id), name)
    return names


def seen_products(session: Session, integration: Integration) -> list[tuple[str, str]]:
    """Main products deliveries named, as (product id, name), for the "configure a product" list."""
    named = product_names(session, integration)
    return sorted(((pid, name) for (kind, pid), name in named.items() if kind == "product"),
                  key=lambda item: (len(item[0]), item[0]))


@dataclass
class Outcome:
    """What one delivery did, for its event page."""

    member: Member | None = None
    member_created: bool = False
    grants_opened: list[Grant] = field(default_factory=list)
    grants_revoked: list[Grant] = field(default_factory=list)
    emails: list[OutboundEmail] = field(default_factory=list)
    tags: list[MemberTag] = field(default_factory=list)
    unmapped: list[parsers.Line] = field(default_factory=list)

    @property
    def anything(self) -> bool:
        return bool(self.member or self.grants_opened or self.grants_revoked or self.emails or self.tags)


def _unmapped(session: Session, row: WebhookEvent, event: parsers.OrderEvent | None) -> list[parsers.Line]:
    if event is None or row.integration_id is None or row.status != EventStatus.NEEDS_ATTENTION:
        return []
    if event.action != parsers.Action.ORDER_COMPLETED:
        return []
    found = rules.levels_for_items(session, row.integration_id,
                                   [(line.item_type, line.product_id, line.pricing_option_id) for line in event.lines])
    return [line for line, levels in zip(event.lines, found) if not levels]


def outcome(session: Session, row: WebhookEvent) -> Outcome:
    event = _parsed(row)
    result = Outcome(unmapped=_unmapped(session, row, event))
    if row.processed_at is None or row.status == EventStatus.DUPLICATE:
        return result
    # Never before the delivery arrived: an earlier delivery of the same order did what came before.
    since = max(row.received_at, row.processed_at - PROCESSING_SPAN)
    until = row.processed_at + SLACK
    member = session.scalar(select(Member).where(Member.email == row.email)) if row.email else None
    refs = [Grant.order_ref == row.order_ref] if row.order_ref else []
    if event is not None and event.subscription_ref:
        refs.append(Grant.subscription_ref == event.subscription_ref)
    if refs and row.integration_id is not None:
        grants = list(session.scalars(select(Grant).where(Grant.integration_id == row.integration_id, or_(*refs))
                                      .order_by(Grant.id)))
        result.grants_opened = [g for g in grants if since <= g.created_at <= until]
        result.grants_revoked = [g for g in grants if g.revoked_at and since <= g.revoked_at <= until]
        if member is None and grants:
            member = grants[0].member
    if member is None:
        return result
    result.member = member
    result.member_created = row.received_at <= member.created_at <= until
    result.emails = list(session.scalars(select(OutboundEmail).where(
        OutboundEmail.member_id == member.id, OutboundEmail.created_at >= since, OutboundEmail.created_at <= until)
        .order_by(OutboundEmail.id)))
    result.tags = list(session.scalars(select(MemberTag).where(
        MemberTag.member_id == member.id, MemberTag.applied_at >= since, MemberTag.applied_at <= until)))
    return result
