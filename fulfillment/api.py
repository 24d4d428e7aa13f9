"""Owner API for cart integrations and their fulfillment rules."""

from __future__ import annotations

from flask_smorest import Blueprint
from sqlalchemy import select

from extensions import db
from fulfillment import keap_post, rules, services
from fulfillment.errors import EventNotFound, NotKeapIntegration
from fulfillment.models import FulfillmentRule, Integration, IntegrationKind, WebhookEvent
from fulfillment.schemas import (EventArgs, EventDetailOut, EventOut, IntegrationCreated, IntegrationIn,
                                 IntegrationOut, IntegrationUpdate, KeapSetupOut, RuleIn, RuleOut, RuleUpdate)
from membership import auth
from pagination import PAGE_SIZE, SelectPage

blp = Blueprint("fulfillment_api", __name__, url_prefix="/api/v1",
                description="Cart integrations and the rules that map what was sold to access levels.")
blp.before_request(auth.require_owner)

ITEM = ["PATCH", "PUT"]


@blp.route("/integrations", methods=["GET"])
@blp.response(200, IntegrationOut(many=True))
@blp.paginate(SelectPage, **PAGE_SIZE)
def list_integrations():
    return select(Integration).order_by(Integration.id)


@blp.route("/integrations", methods=["POST"])
@blp.arguments(IntegrationIn)
@blp.response(201, IntegrationCreated)
def create_integration(data):
    """Connect a cart. The answer carries the ``webhook_url`` to paste into the cart and, once only, the secret.

    422 ``no_published_course`` while no course is published."""
    integration = rules.create_integration(db.session, data)
    return integration


@blp.route("/integrations/<int:integration_id>", methods=["GET"])
@blp.response(200, IntegrationOut)
def get_integration(integration_id):
    return rules.get_integration(db.session, integration_id)


@blp.route("/integrations/<int:integration_id>", methods=ITEM)
@blp.arguments(IntegrationUpdate)
@blp.response(200, IntegrationOut)
def update_integration(data, integration_id):
    integration = rules.update_integration(db.session, rules.get_integration(db.session, integration_id), data)
    return integration


@blp.route("/integrations/<int:integration_id>", methods=["DELETE"])
@blp.response(204)
def delete_integration(integration_id):
    """Delete an integration and its rules; grants it gave stay."""
    rules.delete_integration(db.session, rules.get_integration(db.session, integration_id))


@blp.route("/integrations/<int:integration_id>/keap-setup", methods=["GET"])
@blp.response(200, KeapSetupOut)
def keap_setup(integration_id):
    """Keap only: the URL (with its key) and the name/value pairs to paste into a campaign's "Send HTTP Post".

    409 ``not_a_keap_integration`` for another kind of integration."""
    integration = rules.get_integration(db.session, integration_id)
    if integration.kind != IntegrationKind.KEAP:
        raise NotKeapIntegration()
    return keap_post.setup(db.session, integration)


@blp.route("/integrations/<int:integration_id>/rules", methods=["GET"])
@blp.response(200, RuleOut(many=True))
def list_rules(integration_id):
    integration = rules.get_integration(db.session, integration_id)
    return db.session.scalars(
        select(FulfillmentRule).where(FulfillmentRule.integration_id == integration.id).order_by(FulfillmentRule.id)
    ).all()


@blp.route("/integrations/<int:integration_id>/rules", methods=["POST"])
@blp.arguments(RuleIn)
@blp.response(201, RuleOut)
def create_rule(data, integration_id):
    """Map a product (optionally one pricing option; item type product, bump, upsell or downsell) to levels."""
    rule = rules.create_rule(db.session, rules.get_integration(db.session, integration_id), data)
    return rule


@blp.route("/integrations/<int:integration_id>/rules/<int:rule_id>", methods=["GET"])
@blp.response(200, RuleOut)
def get_rule(integration_id, rule_id):
    return rules.get_rule(db.session, rules.get_integration(db.session, integration_id), rule_id)


@blp.route("/integrations/<int:integration_id>/rules/<int:rule_id>", methods=ITEM)
@blp.arguments(RuleUpdate)
@blp.response(200, RuleOut)
def update_rule(data, integration_id, rule_id):
    integration = rules.get_integration(db.session, integration_id)
    rule = rules.update_rule(db.session, rules.get_rule(db.session, integration, rule_id), data)
    return rule


@blp.route("/integrations/<int:integration_id>/rules/<int:rule_id>", methods=["DELETE"])
@blp.response(204)
def delete_rule(integration_id, rule_id):
    integration = rules.get_integration(db.session, integration_id)
    rules.delete_rule(db.session, rules.get_rule(db.session, integration, rule_id))


# --- webhook events ---------------------------------------------------------------------------------

def _event(event_id: int) -> WebhookEvent:
    row = db.session.get(WebhookEvent, event_id)
    if row is None:
        raise EventNotFound()
    return row


@blp.route("/events", methods=["GET"])
@blp.arguments(EventArgs, location="query", as_kwargs=True)
@blp.response(200, EventOut(many=True))
@blp.paginate(SelectPage, **PAGE_SIZE)
def list_events(integration_id=None, status=None, email=None):
    """Cart deliveries, newest first; filter by integration, status (e.g. ``needs_attention``) or email."""
    query = select(WebhookEvent).order_by(WebhookEvent.id.desc())
    if integration_id is not None:
        query = query.where(WebhookEvent.integration_id == integration_id)
    if status:
        query = query.where(WebhookEvent.status == status)
    if email:
        query = query.where(WebhookEvent.email == email.strip().lower())
    return query


@blp.route("/events/<int:event_id>", methods=["GET"])
@blp.response(200, EventDetailOut)
def get_event(event_id):
    """One delivery with its payload (the cart secret was removed before it was stored)."""
    return _event(event_id)


@blp.route("/events/<int:event_id>/replay", methods=["POST"])
@blp.response(200, EventOut)
def replay_event(event_id):
    """Process a stored delivery again, e.g. a ``needs_attention`` order after adding the missing rule.

    409 ``event_already_processed`` for an event that was processed (it would apply twice)."""
    row = services.replay(db.session, _event(event_id))
    return row
