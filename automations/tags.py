"""The tags built-in events apply, whose names the owner can change per integration. (Tagging a member is
``membership.tags.tag_member``; the automations hear it as ``tag_added`` / ``tag_removed``.)"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from automations import active
from automations.errors import IntegrationNotFound
from automations.models import EventTagNames, Trigger
from extensions import db
from membership import tags as member_tags

# Built-in event -> (column in event_tag_names, default name template). {product_id} is the cart product.
EVENT_TAGS: dict[str, tuple[str, str]] = {
    Trigger.ORDER_COMPLETED: ("purchased", "purchased-{product_id}"),
    Trigger.LINE_REFUNDED: ("refunded", "refunded"),
    Trigger.SUBSCRIPTION_CANCELLED: ("cancelled", "cancelled"),
    Trigger.PAYMENT_FAILED: ("payment_failed", "payment-failed"),
    Trigger.PAYMENT_RECOVERED: ("payment_recovered", "payment-recovered"),
    Trigger.CARD_UPDATED: ("card_updated", "card-updated"),
}
TEMPLATE_FIELDS = tuple(column for column, _ in EVENT_TAGS.values())
DEFAULT_TEMPLATES = {column: default for column, default in EVENT_TAGS.values()}
# Placeholders a name template may use.
TEMPLATE_PLACEHOLDERS = {"product_id", "integration_id"}


def require_integration(session: Session, integration_id: int) -> None:
    """The integrations table belongs to fulfillment; read it through core so automations stays below it."""
    table = db.metadata.tables["integrations"]
    if session.scalar(select(table.c.id).where(table.c.id == integration_id)) is None:
        raise IntegrationNotFound()


def integration_settings(session: Session, integration_id: int | None) -> dict:
    if integration_id is None:
        return {}
    table = db.metadata.tables["integrations"]
    row = session.execute(
        select(table.c.grace_days, table.c.card_update_url).where(table.c.id == integration_id)
    ).first()
    return dict(row._mapping) if row else {}


def tag_name_templates(session: Session, integration_id: int | None) -> dict[str, str]:
    """The effective templates: the owner's where set ("" switches a tag off), else the defaults."""
    templates = dict(DEFAULT_TEMPLATES)
    if integration_id is not None:
        row = session.get(EventTagNames, integration_id)
        if row is not None:
            for column in TEMPLATE_FIELDS:
                value = getattr(row, column)
                if value is not None:
                    templates[column] = value
    return templates


def set_tag_name_templates(session: Session, integration_id: int, changes: dict) -> dict[str, str]:
    require_integration(session, integration_id)
    row = session.get(EventTagNames, integration_id)
    if row is None:
        row = EventTagNames(integration_id=integration_id)
        session.add(row)
    for column in TEMPLATE_FIELDS:
        if column in changes:
            setattr(row, column, changes[column])
    session.flush()
    return tag_name_templates(session, integration_id)


def render_template_name(template: str, *, product_id: str | None, integration_id: int | None) -> str | None:
    if not template:
        return None
    values = {"product_id": member_tags.slug_part(product_id if product_id is not None else "none"),
              "integration_id": str(integration_id) if integration_id is not None else "none"}
    name = template
    for key, value in values.items():
        name = name.replace("{" + key + "}", value)
    return member_tags.normalise_tag_name(name)


def event_tag_name(session: Session, trigger: str, *, product_id: str | None,
                   integration_id: int | None) -> str | None:
    if trigger not in EVENT_TAGS:
        return None
    column, _ = EVENT_TAGS[trigger]
    if trigger == Trigger.ORDER_COMPLETED and product_id is None:
        return None
    # Most integrations keep the default names: no query for those.
    named = integration_id in active.get(session).named_integrations
    templates = tag_name_templates(session, integration_id) if named else DEFAULT_TEMPLATES
    return render_template_name(templates[column],
                                product_id=product_id, integration_id=integration_id)
