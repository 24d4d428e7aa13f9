"""What the admin does beyond plain CRUD: extend a grant, resend a welcome email, the product mapping screen.

Like every service here: take a session, flush, never commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

import timeutil
from emails import services as email_services
from emails.models import OutboundEmail
from errors import Conflict, Unprocessable
from fulfillment import rules
from fulfillment.models import FulfillmentRule, Integration, ItemType
from membership import bulk
from membership import services as membership_services
from membership.models import Grant, GrantStatus, Member

# --- members ---------------------------------------------------------------------------------------

def search_members(q: str | None):
    """Members matching part of an email or name, newest first.

    On PostgreSQL the ``ix_members_*_trgm`` trigram indexes serve ``LIKE '%…%'``; an email-looking query
    (with "@") is matched as a prefix of the unique email index, which every database can use.
    """
    query = select(Member).order_by(Member.id.desc())
    condition = bulk.search_condition(q)  # the same members a bulk change "matching this search" changes
    return query if condition is None else query.where(condition)


def member_grants(session: Session, member: Member) -> list[Grant]:
    return list(session.scalars(select(Grant).where(Grant.member_id == member.id)
                                .order_by(Grant.created_at.desc(), Grant.id.desc())).unique())


def member_emails(session: Session, member: Member, limit: int = 50) -> list[OutboundEmail]:
    return list(session.scalars(select(OutboundEmail).where(OutboundEmail.member_id == member.id)
                                .order_by(OutboundEmail.id.desc()).limit(limit)))


def extend_grant(session: Session, grant: Grant, ends_at: datetime | None) -> Grant:
    """Give a grant a new end (``None``: no end). An expired grant whose new end is ahead opens again."""
    if grant.status == GrantStatus.REVOKED:
        raise Conflict("A revoked grant cannot be extended; grant the level again instead.",
                       code="grant_revoked")
    if ends_at is not None and ends_at <= grant.starts_at:
        raise Unprocessable("The new end must be after the grant's start.", code="invalid_ends_at",
                            errors={"ends_at": ["Must be after the start."]})
    grant.ends_at = ends_at
    if grant.status == GrantStatus.EXPIRED and (ends_at is None or ends_at > timeutil.now()):
        grant.status = GrantStatus.ACTIVE
    session.flush()
    return grant


def resend_welcome_email(session: Session, member: Member) -> OutboundEmail:
    """Queue the welcome email again, with a fresh login link. ``queue_welcome_email`` sends it once per
    member ever (its dedupe key); an owner asking for it again is a deliberate exception, so no key."""
    levels = membership_services.levels_with_access(session, member.id)
    email = email_services.enqueue(session, "welcome", member.email,
                                   membership_services.welcome_context(member, levels), member_id=member.id)
    assert email is not None  # no dedupe key: always queued
    return email


# --- the ThriveCart-style product mapping ----------------------------------------------------------

SAME_FOR_ALL = "all"
PER_OPTION = "per_option"


@dataclass
class Row:
    ref: str  # a pricing option id, or an upsell's / downsell's id
    level_ids: list[int]


@dataclass
class ProductMapping:
    """Everything a purchase of one cart product can unlock, as the mapping screen shows it.

    Upsells and downsells are numbered by the cart on their own (``upsell-3``), not per product, so their
    rules belong to the whole integration; the screen shows and saves them all.
    """

    product_id: str
    mode: str = SAME_FOR_ALL
    level_ids: list[int] = field(default_factory=list)  # every pricing option (mode "all")
    options: list[Row] = field(default_factory=list)  # one row per pricing option (mode "per_option")
    bump_level_ids: list[int] = field(default_factory=list)
    upsells: list[Row] = field(default_factory=list)
    downsells: list[Row] = field(default_factory=list)

    def wanted(self) -> dict[tuple[str, str, str | None], list[int]]:
        """(item type, product id, pricing option) -> level ids, for each rule this mapping needs."""
        rules_wanted: dict[tuple[str, str, str | None], list[int]] = {}
        if self.mode == SAME_FOR_ALL:
            if self.level_ids:
                rules_wanted[(ItemType.PRODUCT, self.product_id, None)] = self.level_ids
        else:
            for row in self.options:
                rules_wanted[(ItemType.PRODUCT, self.product_id, row.ref)] = row.level_ids
        if self.bump_level_ids:
            rules_wanted[(ItemType.BUMP, self.product_id, None)] = self.bump_level_ids
        for item_type, rows in ((ItemType.UPSELL, self.upsells), (ItemType.DOWNSELL, self.downsells)):
            for row in rows:
                rules_wanted[(item_type, row.ref, None)] = row.level_ids
        return rules_wanted


def _rules_in_scope(session: Session, integration: Integration, product_id: str) -> list[FulfillmentRule]:
    return list(session.scalars(
        select(FulfillmentRule).where(
            FulfillmentRule.integration_id == integration.id,
            or_(
                (FulfillmentRule.product_id == product_id)
                & FulfillmentRule.item_type.in_([ItemType.PRODUCT, ItemType.BUMP]),
                FulfillmentRule.item_type.in_([ItemType.UPSELL, ItemType.DOWNSELL]),
            ),
        ).order_by(FulfillmentRule.id)
    ))


def load_mapping(session: Session, integration: Integration, product_id: str) -> ProductMapping:
    mapping = ProductMapping(product_id=product_id)
    for rule in _rules_in_scope(session, integration, product_id):
        ids = [level.id for level in rule.levels]
        if rule.item_type == ItemType.PRODUCT and rule.pricing_option_id is None:
            mapping.level_ids = ids
        elif rule.item_type == ItemType.PRODUCT:
            mapping.options.append(Row(rule.pricing_option_id, ids))
        elif rule.item_type == ItemType.BUMP and rule.pricing_option_id is None:
            mapping.bump_level_ids = ids
        elif rule.item_type == ItemType.UPSELL:
            mapping.upsells.append(Row(rule.product_id, ids))
        elif rule.item_type == ItemType.DOWNSELL:
            mapping.downsells.append(Row(rule.product_id, ids))
    if mapping.options:
        mapping.mode = PER_OPTION
    return mapping


def save_mapping(session: Session, integration: Integration, mapping: ProductMapping) -> list[FulfillmentRule]:
    """Make the integration's rules say what ``mapping`` says, through the fulfillment rule services."""
    wanted = mapping.wanted()
    existing = {(r.item_type, r.product_id, r.pricing_option_id): r
                for r in _rules_in_scope(session, integration, mapping.product_id)}
    for key, rule in existing.items():
        if key not in wanted:
            rules.delete_rule(session, rule)
    saved = []
    for (item_type, product_id, option), level_ids in wanted.items():
        rule = existing.get((item_type, product_id, option))
        if rule is None:
            rule = rules.create_rule(session, integration, {"item_type": item_type, "product_id": product_id,
                                                            "pricing_option_id": option,
                                                            "level_ids": level_ids})
        elif [level.id for level in rule.levels] != level_ids:
            rule = rules.update_rule(session, rule, {"level_ids": level_ids})
        saved.append(rule)
    return saved


def configured_products(session: Session, integration: Integration) -> list[tuple[str, list[FulfillmentRule]]]:
    """Each product id with a product or bump rule, and those rules; for the integration's page."""
    grouped: dict[str, list[FulfillmentRule]] = {}
    for rule in integration.rules:
        if rule.item_type in (ItemType.PRODUCT, ItemType.BUMP):
            grouped.setdefault(rule.product_id, []).append(rule)
    return sorted(grouped.items(), key=lambda item: (len(item[0]), item[0]))
