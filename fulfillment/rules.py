"""The owner's mapping from what a cart sold to access levels, and how an order line is resolved."""

from __future__ import annotations

import secrets

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from fulfillment.errors import DuplicateRule, IntegrationNotFound, NoPublishedCourse, RuleNotFound
from fulfillment.models import FulfillmentRule, Integration, IntegrationKind
from membership import courses
from membership.models import Level

INTEGRATION_SETTINGS = ("name", "accept_test_orders", "cancel_access", "grace_days", "card_update_url",
                        "external_source", "manage_subscriptions_url", "access_added_email")
KEAP_DEFAULT_SOURCE = "infusionsoft"


def webhook_url(integration: Integration) -> str:
    return f"{current_app.config['SITE_URL']}/webhooks/{integration.kind}/{integration.id}"


def external_source(integration: Integration) -> str:
    """Keap: what an enrolment sets as the member's ``external_source``."""
    return integration.external_source or KEAP_DEFAULT_SOURCE


def get_integration(session: Session, integration_id: int) -> Integration:
    integration = session.get(Integration, integration_id)
    if integration is None:
        raise IntegrationNotFound()
    return integration


def _require_published_course(session: Session) -> None:
    if not courses.any_published_course(session):
        raise NoPublishedCourse()


def create_integration(session: Session, data: dict) -> Integration:
    """Create a cart connection. A generic cart gets a generated signing secret unless one is given, and a
    Keap integration a generated URL key."""
    _require_published_course(session)
    secret = data.get("secret")
    if not secret and data["kind"] == IntegrationKind.GENERIC:
        secret = "cgwh_" + secrets.token_urlsafe(32)
    if not secret and data["kind"] == IntegrationKind.KEAP:
        secret = "cgkp_" + secrets.token_urlsafe(24)
    integration = Integration(kind=data["kind"], secret=secret or None, api_key=data.get("api_key"),
                              **{k: data[k] for k in INTEGRATION_SETTINGS if k in data})
    session.add(integration)
    session.flush()
    return integration


def update_integration(session: Session, integration: Integration, data: dict) -> Integration:
    _require_published_course(session)
    for field in INTEGRATION_SETTINGS:
        if field in data:
            setattr(integration, field, data[field])
    if data.get("secret"):
        integration.secret = data["secret"]
    if "api_key" in data:
        integration.api_key = data["api_key"] or None
    session.flush()
    return integration


def delete_integration(session: Session, integration: Integration) -> None:
    session.delete(integration)
    session.flush()


def get_rule(session: Session, integration: Integration, rule_id: int) -> FulfillmentRule:
    rule = session.get(FulfillmentRule, rule_id)
    if rule is None or rule.integration_id != integration.id:
        raise RuleNotFound()
    return rule


def _flush_unique_rule(session: Session) -> None:
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise DuplicateRule() from None


def create_rule(session: Session, integration: Integration, data: dict) -> FulfillmentRule:
    rule = FulfillmentRule(integration=integration, item_type=data["item_type"], product_id=data["product_id"],
                           pricing_option_id=data.get("pricing_option_id"),
                           levels=courses.levels_by_ids(session, data["level_ids"]))
    session.add(rule)
    _flush_unique_rule(session)
    return rule


def update_rule(session: Session, rule: FulfillmentRule, data: dict) -> FulfillmentRule:
    for field in ("item_type", "product_id", "pricing_option_id"):
        if field in data:
            setattr(rule, field, data[field])
    if "level_ids" in data:
        rule.levels = courses.levels_by_ids(session, data["level_ids"])
    _flush_unique_rule(session)
    return rule


def delete_rule(session: Session, rule: FulfillmentRule) -> None:
    session.delete(rule)
    session.flush()


def _choose(candidates: list[FulfillmentRule], pricing_option_id: str | None) -> list[Level]:
    specific = [r for r in candidates if pricing_option_id is not None and r.pricing_option_id == pricing_option_id]
    general = [r for r in candidates if r.pricing_option_id is None]
    chosen = specific or general
    return list(chosen[0].levels) if chosen else []


def levels_for_item(session: Session, integration_id: int, item_type: str, product_id: str,
                    pricing_option_id: str | None) -> list[Level]:
    """The levels one bought item opens: the rule for its pricing option if there is one, else the rule
    for every option of the product, else nothing."""
    candidates = session.scalars(
        select(FulfillmentRule).where(
            FulfillmentRule.integration_id == integration_id,
            FulfillmentRule.item_type == item_type,
            FulfillmentRule.product_id == product_id,
        )
    ).all()
    return _choose(list(candidates), pricing_option_id)


def levels_for_items(session: Session, integration_id: int,
                     items: list[tuple[str, str, str | None]]) -> list[list[Level]]:
    """``levels_for_item`` for several ``(item_type, product_id, pricing_option_id)`` at once, in one query."""
    if not items:
        return []
    rules = session.scalars(
        select(FulfillmentRule)
        .where(FulfillmentRule.integration_id == integration_id,
               FulfillmentRule.product_id.in_({product_id for _, product_id, _ in items}))
        # The levels' courses too: the welcome email of a new buyer lists them, without another query.
        .options(joinedload(FulfillmentRule.levels).joinedload(Level.courses))
    ).unique().all()
    by_item: dict[tuple[str, str], list[FulfillmentRule]] = {}
    for rule in rules:
        by_item.setdefault((rule.item_type, rule.product_id), []).append(rule)
    return [_choose(by_item.get((item_type, product_id), []), option) for item_type, product_id, option in items]
