"""What the admin does beyond plain CRUD: extend a grant, resend a welcome email, the product mapping screen.

Like every service here: take a session, flush, never commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from emails import services as email_services
from emails.models import OutboundEmail
from fulfillment import rules
from fulfillment.models import FulfillmentRule, Integration, ItemType
from membership import bulk
from membership import services as membership_services
from membership.models import Grant, Member
from errors import Conflict, Unprocessable

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
FUNNEL_TYPES = (ItemType.UPSELL, ItemType.DOWNSELL)


@dataclass
class Row:
    ref: str  # a pricing option id, or an upsell's / downsell's id
    level_ids: list[int]


RuleKey = tuple[str, str, "str | None"]  # (item type, product id, pricing option)


@dataclass
class ProductMapping:
    """What a purchase of one cart product (and its order bump) unlocks, as the product's screen shows it.

    Upsells and downsells are numbered by the cart on their own (``upsell-3``), not per product, so their
    rules belong to the whole integration: see ``FunnelMapping``.
    """

    product_id: str
    mode: str = SAME_FOR_ALL
    level_ids: list[int] = field(default_factory=list)  # every pricing option (mode "all")
    options: list[Row] = field(default_factory=list)  # one row per pricing option (mode "per_option")
    bump_level_ids: list[int] = field(default_factory=list)

    def main_rules(self) -> dict[RuleKey, list[int]]:
        if self.mode == SAME_FOR_ALL:
            return {(ItemType.PRODUCT, self.product_id, None): self.level_ids} if self.level_ids else {}
        return {(ItemType.PRODUCT, self.product_id, row.ref): row.level_ids for row in self.options if row.level_ids}

    def wanted(self) -> dict[RuleKey, list[int]]:
        """(item type, product id, pricing option) -> level ids, for each rule this mapping needs."""
        rules_wanted = self.main_rules()
        if self.bump_level_ids:
            rules_wanted[(ItemType.BUMP, self.product_id, None)] = self.bump_level_ids
        return rules_wanted


@dataclass
class FunnelMapping:
    """The integration's upsells and downsells, each an id and the levels it unlocks."""

    upsells: list[Row] = field(default_factory=list)
    downsells: list[Row] = field(default_factory=list)

    def wanted(self) -> dict[RuleKey, list[int]]:
        return {(item_type, row.ref, None): row.level_ids
                for item_type, rows in ((ItemType.UPSELL, self.upsells), (ItemType.DOWNSELL, self.downsells))
                for row in rows if row.level_ids}


class EmptyMapping(Unprocessable):
    code = "empty_mapping"


def _product_rules(session: Session, integration: Integration, product_id: str) -> list[FulfillmentRule]:
    return list(session.scalars(
        select(FulfillmentRule).where(FulfillmentRule.integration_id == integration.id,
                                      FulfillmentRule.product_id == product_id,
                                      FulfillmentRule.item_type.in_([ItemType.PRODUCT, ItemType.BUMP]))
        .order_by(FulfillmentRule.id)))


def _funnel_rules(session: Session, integration: Integration) -> list[FulfillmentRule]:
    return list(session.scalars(
        select(FulfillmentRule).where(FulfillmentRule.integration_id == integration.id,
                                      FulfillmentRule.item_type.in_(FUNNEL_TYPES))
        .order_by(FulfillmentRule.id)))


def load_mapping(session: Session, integration: Integration, product_id: str) -> ProductMapping:
    mapping = ProductMapping(product_id=product_id)
    for rule in _product_rules(session, integration, product_id):
        ids = [level.id for level in rule.levels]
        if rule.item_type == ItemType.PRODUCT and rule.pricing_option_id is None:
            mapping.level_ids = ids
        elif rule.item_type == ItemType.PRODUCT:
            mapping.options.append(Row(rule.pricing_option_id, ids))
        elif rule.pricing_option_id is None:
            mapping.bump_level_ids = ids
    if mapping.options:
        mapping.mode = PER_OPTION
    return mapping


def load_funnel(session: Session, integration: Integration) -> FunnelMapping:
    funnel = FunnelMapping()
    for rule in _funnel_rules(session, integration):
        rows = funnel.upsells if rule.item_type == ItemType.UPSELL else funnel.downsells
        rows.append(Row(rule.product_id, [level.id for level in rule.levels]))
    return funnel


def describe_rule(item_type: str, product_id: str, option: str | None) -> str:
    """How the admin names a rule's item to the owner: "product 12", "product 12, pricing option 2", "bump 12"."""
    text = f"{'the order bump of product' if item_type == ItemType.BUMP else item_type} {product_id}"
    return text + (f", pricing option {option}" if option else "")


def _sync(session: Session, integration: Integration, existing: list[FulfillmentRule],
          wanted: dict[RuleKey, list[int]]) -> list[str]:
    """Make ``existing`` say what ``wanted`` says; return one sentence per change, for the owner."""
    by_key = {(r.item_type, r.product_id, r.pricing_option_id): r for r in existing}
    changes = []
    for key, rule in by_key.items():
        if key not in wanted:
            changes.append(f"{describe_rule(*key)} no longer unlocks {_names(rule.levels)}")
            rules.delete_rule(session, rule)
    for key, level_ids in wanted.items():
        rule = by_key.get(key)
        if rule is None:
            item_type, product_id, option = key
            rule = rules.create_rule(session, integration, {"item_type": item_type, "product_id": product_id,
                                                            "pricing_option_id": option, "level_ids": level_ids})
        elif [level.id for level in rule.levels] != level_ids:
            rule = rules.update_rule(session, rule, {"level_ids": level_ids})
        else:
            continue
        changes.append(f"{describe_rule(*key)} unlocks {_names(rule.levels)}")
    return changes


def _names(levels) -> str:
    return ", ".join(level.name for level in levels) or "nothing"


def save_mapping(session: Session, integration: Integration, mapping: ProductMapping) -> list[str]:
    """Make the product's rules say what ``mapping`` says. A save that leaves the product itself unlocking
    nothing is refused, as the API refuses an empty ``level_ids``: taking a product out of fulfillment is
    ``stop_fulfilling``, asked for on purpose. Returns what changed, one sentence each."""
    existing = _product_rules(session, integration, mapping.product_id)
    if not mapping.main_rules():
        if any(rule.item_type == ItemType.PRODUCT for rule in existing):
            raise EmptyMapping(
                f"Nothing saved: product {mapping.product_id} would unlock no level. Tick at least one level, "
                f"or use “Stop fulfilling this product” to take it out of fulfillment on purpose.")
        raise EmptyMapping(f"Nothing saved: tick at least one level that buying product {mapping.product_id} "
                           f"unlocks.")
    return _sync(session, integration, existing, mapping.wanted())


def save_funnel(session: Session, integration: Integration, funnel: FunnelMapping) -> list[str]:
    """The integration's upsell and downsell rules; a row whose id was cleared is removed (and said so)."""
    return _sync(session, integration, _funnel_rules(session, integration), funnel.wanted())


def product_rules(session: Session, integration: Integration, product_id: str) -> list[FulfillmentRule]:
    """The rules ``stop_fulfilling`` would remove, for its confirmation page."""
    return _product_rules(session, integration, product_id)


def stop_fulfilling(session: Session, integration: Integration, product_id: str) -> list[str]:
    """Remove every rule of a product (every pricing option and its bump): later purchases of it need
    attention instead of granting. Grants already made stay. Returns what was removed."""
    existing = _product_rules(session, integration, product_id)
    if not existing:
        raise Conflict(f"Product {product_id} has no rule to remove.", code="no_rule")
    return _sync(session, integration, existing, {})


def configured_products(session: Session, integration: Integration) -> list[tuple[str, list[FulfillmentRule]]]:
    """Each product id with a product or bump rule, and those rules; for the integration's page."""
    grouped: dict[str, list[FulfillmentRule]] = {}
    for rule in integration.rules:
        if rule.item_type in (ItemType.PRODUCT, ItemType.BUMP):
            grouped.setdefault(rule.product_id, []).append(rule)
    return sorted(grouped.items(), key=lambda item: (len(item[0]), item[0]))
