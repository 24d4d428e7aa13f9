"""Owner API for tags, automation rules and their runs, event tag names, and outgoing webhook endpoints."""

from __future__ import annotations

import uuid

from flask_smorest import Blueprint
from sqlalchemy import select
from sqlalchemy.orm import joinedload, undefer

from automations import rules, tags, webhooks
from automations.errors import RunNotFound
from automations.models import AutomationRule, AutomationRun, WebhookDelivery, WebhookEndpoint
from automations.schemas import (
    AutomationCatalogOut,
    AutomationIn,
    AutomationOut,
    AutomationRunArgs,
    AutomationRunOut,
    AutomationUpdate,
    MemberTagOut,
    TaggedMemberOut,
    TagIn,
    TagNamesIn,
    TagNamesOut,
    TagOut,
    WebhookDeliveryArgs,
    WebhookDeliveryDetailOut,
    WebhookDeliveryOut,
    WebhookEndpointCreated,
    WebhookEndpointIn,
    WebhookEndpointOut,
    WebhookEndpointUpdate,
)
from errors import Conflict
from extensions import db
from membership import auth
from membership import tags as member_tags
from membership.errors import MemberNotFound
from membership.models import Member
from membership.tags import AppliedBy, MemberTag, Tag, TagNotFound
from pagination import PAGE_SIZE, SelectPage

blp = Blueprint("automations_api", __name__, url_prefix="/api/v1",
                description="Tags, automation rules and their runs, and outgoing webhooks (the CRM link).")
blp.before_request(auth.require_owner)

ITEM = ["PATCH", "PUT"]


class DuplicateTag(Conflict):
    code = "duplicate_tag"
    message = "A tag with that name already exists."


def _member(member_id: int) -> Member:
    member = db.session.get(Member, member_id)
    if member is None:
        raise MemberNotFound()
    return member


# --- tags ------------------------------------------------------------------------------------------

@blp.route("/tags", methods=["GET"])
@blp.response(200, TagOut(many=True))
@blp.paginate(SelectPage, **PAGE_SIZE)
def list_tags():
    """Every tag, by name, with how many members carry it."""
    return select(Tag).options(undefer(Tag.member_count)).order_by(Tag.name)


@blp.route("/tags", methods=["POST"])
@blp.arguments(TagIn)
@blp.response(201, TagOut)
def create_tag(data):
    """Create a tag before anyone carries it (409 ``duplicate_tag`` if it exists)."""
    if db.session.scalar(select(Tag.id).where(Tag.name == data["name"])) is not None:
        raise DuplicateTag()
    tag = member_tags.get_or_create_tag(db.session, data["name"])
    return db.session.scalar(select(Tag).options(undefer(Tag.member_count)).where(Tag.id == tag.id))


@blp.route("/tags/<name>", methods=["DELETE"])
@blp.response(204)
def delete_tag(name):
    """Delete a tag and take it off every member (fires no ``tag_removed``)."""
    member_tags.delete_tag(db.session, member_tags.get_tag(db.session, name))


@blp.route("/tags/<name>/members", methods=["GET"])
@blp.response(200, TaggedMemberOut(many=True))
@blp.paginate(SelectPage, **PAGE_SIZE)
def tagged_members(name):
    """The members carrying a tag, most recently tagged first."""
    tag = member_tags.get_tag(db.session, name)
    return (select(MemberTag).options(joinedload(MemberTag.member)).where(MemberTag.tag_id == tag.id)
            .order_by(MemberTag.applied_at.desc(), MemberTag.member_id))


@blp.route("/members/<int:member_id>/tags", methods=["GET"])
@blp.response(200, MemberTagOut(many=True))
def list_member_tags(member_id):
    """A member's tags: when each was applied and by what."""
    return member_tags.member_tags(db.session, _member(member_id).id)


@blp.route("/members/<int:member_id>/tags", methods=["POST"])
@blp.arguments(TagIn)
@blp.response(201, MemberTagOut)
@blp.alt_response(200, schema=MemberTagOut, description="The member already carried the tag: nothing changed.")
def add_member_tag(data, member_id):
    """Tag a member (runs the ``tag_added`` automations). 200 when the member already carried the tag."""
    member = _member(member_id)
    added = member_tags.tag_member(db.session, member, data["name"], applied_by=AppliedBy.OWNER,
                                   source="owner API", event_key=f"owner:{uuid.uuid4().hex}")
    row = next(r for r in member_tags.member_tags(db.session, member.id) if r.tag.name == data["name"])
    return row, (201 if added else 200)


@blp.route("/members/<int:member_id>/tags/<name>", methods=["DELETE"])
@blp.response(204)
def remove_member_tag(member_id, name):
    """Untag a member (runs the ``tag_removed`` automations); 404 ``tag_not_found`` if they do not carry it."""
    member = _member(member_id)
    if not member_tags.untag_member(db.session, member, name, event_key=f"owner:{uuid.uuid4().hex}"):
        raise TagNotFound("The member does not carry that tag.")


@blp.route("/integrations/<int:integration_id>/tag-names", methods=["GET"])
@blp.response(200, TagNamesOut)
def get_tag_names(integration_id):
    """The tags built-in events apply for this integration (``{product_id}`` is replaced)."""
    tags.require_integration(db.session, integration_id)
    return {"integration_id": integration_id, "templates": tags.tag_name_templates(db.session, integration_id),
            "defaults": tags.DEFAULT_TEMPLATES}


@blp.route("/integrations/<int:integration_id>/tag-names", methods=ITEM)
@blp.arguments(TagNamesIn)
@blp.response(200, TagNamesOut)
def set_tag_names(data, integration_id):
    """Rename built-in event tags: null restores the default, "" applies no tag for that event."""
    templates = tags.set_tag_name_templates(db.session, integration_id, data)
    return {"integration_id": integration_id, "templates": templates, "defaults": tags.DEFAULT_TEMPLATES}


# --- automation rules and runs ---------------------------------------------------------------------

@blp.route("/automations", methods=["GET"])
@blp.response(200, AutomationOut(many=True))
@blp.paginate(SelectPage, **PAGE_SIZE)
def list_rules():
    """Every automation rule, oldest first (the default failed-payment rules appear on first use)."""
    rules.ensure_defaults(db.session)
    return select(AutomationRule).order_by(AutomationRule.id)


@blp.route("/automations", methods=["POST"])
@blp.arguments(AutomationIn)
@blp.response(201, AutomationOut)
def create_rule(data):
    """Create a rule: **when** ``trigger`` (optionally for a level, product or tag) **then** ``actions`` in order.

    422 ``automation_loop`` when the rule could trigger itself through other rules; 422 ``invalid_automation``
    when it refers to a level, endpoint or email that does not exist."""
    rule = rules.create_rule(db.session, data)
    return rule


@blp.route("/automations/catalog", methods=["GET"])
@blp.response(200, AutomationCatalogOut)
def automation_catalog():
    """What a rule can use: triggers, action types, the emails a rule can send and the placeholders of
    owner-written text (for building a rule editor)."""
    return rules.rule_catalog()


@blp.route("/automations/install-defaults", methods=["POST"])
@blp.response(200, AutomationOut(many=True))
def install_defaults():
    """Create any missing rule of the default failed-payment set; returns the rules created."""
    created = rules.install_defaults(db.session)
    return created


@blp.route("/automations/<int:rule_id>", methods=["GET"])
@blp.response(200, AutomationOut)
def get_rule(rule_id):
    return rules.get_rule(db.session, rule_id)


@blp.route("/automations/<int:rule_id>", methods=ITEM)
@blp.arguments(AutomationUpdate)
@blp.response(200, AutomationOut)
def update_rule(data, rule_id):
    rule = rules.update_rule(db.session, rules.get_rule(db.session, rule_id), data)
    return rule


@blp.route("/automations/<int:rule_id>", methods=["DELETE"])
@blp.response(204)
def delete_rule(rule_id):
    """Delete a rule; its runs stay in the log."""
    rules.delete_rule(db.session, rules.get_rule(db.session, rule_id))


def _runs(rule_id=None, member_id=None, status=None):
    query = select(AutomationRun).order_by(AutomationRun.id.desc())
    if rule_id is not None:
        query = query.where(AutomationRun.rule_id == rule_id)
    if member_id is not None:
        query = query.where(AutomationRun.member_id == member_id)
    if status:
        query = query.where(AutomationRun.status == status)
    return query


@blp.route("/automations/runs", methods=["GET"])
@blp.arguments(AutomationRunArgs, location="query", as_kwargs=True)
@blp.response(200, AutomationRunOut(many=True))
@blp.paginate(SelectPage, **PAGE_SIZE)
def list_runs(rule_id=None, member_id=None, status=None):
    """The run log, newest first: rule, event, actions taken, outcome."""
    return _runs(rule_id, member_id, status)


@blp.route("/automations/runs/<int:run_id>", methods=["GET"])
@blp.response(200, AutomationRunOut)
def get_run(run_id):
    run = db.session.get(AutomationRun, run_id)
    if run is None:
        raise RunNotFound()
    return run


@blp.route("/automations/<int:rule_id>/runs", methods=["GET"])
@blp.arguments(AutomationRunArgs, location="query", as_kwargs=True)
@blp.response(200, AutomationRunOut(many=True))
@blp.paginate(SelectPage, **PAGE_SIZE)
def list_rule_runs(rule_id, member_id=None, status=None, **_ignored):
    """One rule's runs, newest first."""
    return _runs(rules.get_rule(db.session, rule_id).id, member_id, status)


# --- outgoing webhook endpoints --------------------------------------------------------------------

@blp.route("/webhook-endpoints", methods=["GET"])
@blp.response(200, WebhookEndpointOut(many=True))
@blp.paginate(SelectPage, **PAGE_SIZE)
def list_endpoints():
    return select(WebhookEndpoint).order_by(WebhookEndpoint.id)


@blp.route("/webhook-endpoints", methods=["POST"])
@blp.arguments(WebhookEndpointIn)
@blp.response(201, WebhookEndpointCreated)
def create_endpoint(data):
    """Register a URL to receive events, signed with ``X-Coursegate-Signature: t=<unix>,v1=<hex HMAC-SHA256 of
    "<t>.<raw body>">``. The secret (generated unless given) is returned this once only."""
    endpoint = webhooks.create_endpoint(db.session, data)
    return endpoint


@blp.route("/webhook-endpoints/<int:endpoint_id>", methods=["GET"])
@blp.response(200, WebhookEndpointOut)
def get_endpoint(endpoint_id):
    return webhooks.get_endpoint(db.session, endpoint_id)


@blp.route("/webhook-endpoints/<int:endpoint_id>", methods=ITEM)
@blp.arguments(WebhookEndpointUpdate)
@blp.response(200, WebhookEndpointOut)
def update_endpoint(data, endpoint_id):
    endpoint = webhooks.update_endpoint(db.session, webhooks.get_endpoint(db.session, endpoint_id), data)
    return endpoint


@blp.route("/webhook-endpoints/<int:endpoint_id>", methods=["DELETE"])
@blp.response(204)
def delete_endpoint(endpoint_id):
    webhooks.delete_endpoint(db.session, webhooks.get_endpoint(db.session, endpoint_id))


@blp.route("/webhook-endpoints/<int:endpoint_id>/deliveries", methods=["GET"])
@blp.arguments(WebhookDeliveryArgs, location="query", as_kwargs=True)
@blp.response(200, WebhookDeliveryOut(many=True))
@blp.paginate(SelectPage, **PAGE_SIZE)
def list_deliveries(endpoint_id, status=None):
    """An endpoint's deliveries, newest first."""
    endpoint = webhooks.get_endpoint(db.session, endpoint_id)
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id).order_by(WebhookDelivery.id.desc())
    if status:
        query = query.where(WebhookDelivery.status == status)
    return query


@blp.route("/webhook-endpoints/<int:endpoint_id>/deliveries/<int:delivery_id>", methods=["GET"])
@blp.response(200, WebhookDeliveryDetailOut)
def get_delivery(endpoint_id, delivery_id):
    """One delivery with its body and every attempt."""
    return webhooks.get_delivery(db.session, webhooks.get_endpoint(db.session, endpoint_id), delivery_id)


@blp.route("/webhook-endpoints/<int:endpoint_id>/deliveries/<int:delivery_id>/redeliver", methods=["POST"])
@blp.response(202, WebhookDeliveryOut)
def redeliver(endpoint_id, delivery_id):
    """Send a delivery's body again as a new delivery (sent after this response)."""
    original = webhooks.get_delivery(db.session, webhooks.get_endpoint(db.session, endpoint_id), delivery_id)
    delivery = webhooks.redeliver(db.session, original)
    return delivery
