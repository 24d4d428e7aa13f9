"""marshmallow schemas for the automations API: separate In (load) and Out (dump) schemas."""

from __future__ import annotations

import re

import marshmallow as ma
from marshmallow import validate

from automations.models import ENDPOINT_URL_PATTERN, TRIGGERS
from automations.tags import render_template_name
from membership.schemas import MemberOut
from membership.tags import TAG_NAME_MAX, TAG_NAME_PATTERN, InvalidTagName, is_valid_tag_name
from schemas_common import ExternalId, JsonBoolean, QueryArgs, StrictSchema

TAG_RULE = ("Use 1 to 100 lower-case letters, digits and - _ . : (starting and ending with a letter or digit).")


class TagName(ma.fields.String):
    """A tag name, normalised (trimmed, lower-cased) and checked."""

    def __init__(self, **kwargs):
        # The spec states the rule the API checks (names are taken in any case and stored lower-case).
        metadata = {"pattern": TAG_NAME_PATTERN, "maxLength": TAG_NAME_MAX, "description": TAG_RULE,
                    **kwargs.pop("metadata", {})}
        super().__init__(metadata=metadata, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        result = super()._deserialize(value, attr, data, **kwargs).strip().lower()
        if not is_valid_tag_name(result):
            raise ma.ValidationError(TAG_RULE)
        return result


# --- tags ------------------------------------------------------------------------------------------

class TagIn(StrictSchema):
    name = TagName(required=True)


class TagOut(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    member_count = ma.fields.Integer()
    created_at = ma.fields.DateTime()


class MemberTagOut(ma.Schema):
    name = ma.fields.Function(lambda row: row.tag.name)
    applied_at = ma.fields.DateTime()
    applied_by = ma.fields.String(metadata={"description": "event, automation, owner or import"})
    source = ma.fields.String(allow_none=True)


class TaggedMemberOut(ma.Schema):
    member = ma.fields.Nested(MemberOut)
    applied_at = ma.fields.DateTime()
    applied_by = ma.fields.String()
    source = ma.fields.String(allow_none=True)


class TagNamesIn(StrictSchema):
    """Name templates for the tags built-in events apply; null = the default, "" = apply no tag.
    ``{product_id}`` and ``{integration_id}`` are replaced."""

    purchased = ma.fields.String(allow_none=True, validate=validate.Length(max=TAG_NAME_MAX))
    refunded = ma.fields.String(allow_none=True, validate=validate.Length(max=TAG_NAME_MAX))
    cancelled = ma.fields.String(allow_none=True, validate=validate.Length(max=TAG_NAME_MAX))
    payment_failed = ma.fields.String(allow_none=True, validate=validate.Length(max=TAG_NAME_MAX))
    payment_recovered = ma.fields.String(allow_none=True, validate=validate.Length(max=TAG_NAME_MAX))
    card_updated = ma.fields.String(allow_none=True, validate=validate.Length(max=TAG_NAME_MAX))

    @ma.validates_schema
    def _templates(self, data, **kwargs):
        errors = {}
        for field, value in data.items():
            if not value:
                continue
            unknown = set(re.findall(r"\{([^{}]*)\}", value)) - {"product_id", "integration_id"}
            if unknown:
                errors[field] = [(f"Unknown placeholder(s): {', '.join(sorted(unknown))}; use {{product_id}} "
                                  "or {integration_id}.")]
                continue
            try:
                render_template_name(value, product_id="p1", integration_id=1)
            except InvalidTagName:
                errors[field] = [(f"Renders to an invalid tag name. {TAG_RULE} Placeholders: {{product_id}}, "
                                  "{integration_id}.")]
        if errors:
            raise ma.ValidationError(errors)


class TagNamesOut(ma.Schema):
    integration_id = ma.fields.Integer()
    templates = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String(),
                               metadata={"description": "Effective name templates, per built-in event"})
    defaults = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())


# --- automation rules ------------------------------------------------------------------------------

class _Action(StrictSchema):
    type = ma.fields.String(required=True)


class AddTagAction(_Action):
    tag = TagName(required=True)


class RemoveTagAction(_Action):
    tag = TagName(required=True)


class GrantLevelAction(_Action):
    level_id = ma.fields.Integer(required=True, strict=True)
    days = ma.fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1, max=36500),
                             metadata={"description": "Access for this many days; omitted = the level's duration"})


class RevokeLevelAction(_Action):
    level_id = ma.fields.Integer(strict=True, allow_none=True,
                                 metadata={"description": "null = the grants the event is about"})
    after_days = ma.fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1, max=3650))
    after_grace_days = JsonBoolean(metadata={"description": "Revoke after the integration's grace days"})
    reason = ma.fields.String(allow_none=True, validate=validate.Length(min=1, max=200))

    @ma.validates_schema
    def _one_delay(self, data, **kwargs):
        if data.get("after_days") and data.get("after_grace_days"):
            raise ma.ValidationError("Give after_days or after_grace_days, not both.", "after_days")


class RestoreAccessAction(_Action):
    level_id = ma.fields.Integer(strict=True, allow_none=True)


class SendEmailAction(_Action):
    template = ma.fields.String(required=True, validate=validate.Length(min=1, max=50))
    subject = ma.fields.String(validate=validate.Length(min=1, max=200))
    body = ma.fields.String(validate=validate.Length(min=1, max=20000))


class SendWebhookAction(_Action):
    endpoint_id = ma.fields.Integer(required=True, strict=True)


ACTION_SCHEMAS = {
    "add_tag": AddTagAction,
    "remove_tag": RemoveTagAction,
    "grant_level": GrantLevelAction,
    "revoke_level": RevokeLevelAction,
    "restore_access": RestoreAccessAction,
    "send_email": SendEmailAction,
    "send_webhook": SendWebhookAction,
}


class ActionField(ma.fields.Field):
    """One action: ``{"type": ..., ...}``, checked against the schema of its type."""

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, dict):
            raise ma.ValidationError("An action is an object with a 'type'.")
        kind = value.get("type")
        if kind not in ACTION_SCHEMAS:
            raise ma.ValidationError({"type": [f"Use one of: {', '.join(ACTION_SCHEMAS)}."]})
        loaded = ACTION_SCHEMAS[kind]().load(value)
        return {k: v for k, v in loaded.items() if v is not None}

    def _serialize(self, value, attr, obj, **kwargs):
        return value


class AutomationIn(StrictSchema):
    name = ma.fields.String(required=True, validate=validate.Length(min=1, max=200))
    trigger = ma.fields.String(required=True, validate=validate.OneOf(TRIGGERS))
    level_id = ma.fields.Integer(strict=True, allow_none=True, load_default=None,
                                 metadata={"description": "Only for events about this access level"})
    product_id = ExternalId(allow_none=True, load_default=None, validate=validate.Length(max=100),
                            metadata={"description": "Only for events about this cart product"})
    tag = TagName(allow_none=True, load_default=None,
                  metadata={"description": "tag_added/tag_removed: only this tag; other triggers: only members "
                                           "who carry it"})
    actions = ma.fields.List(ActionField(), required=True, validate=validate.Length(min=1, max=20))
    enabled = JsonBoolean(load_default=True)


class AutomationUpdate(StrictSchema):
    name = ma.fields.String(validate=validate.Length(min=1, max=200))
    trigger = ma.fields.String(validate=validate.OneOf(TRIGGERS))
    level_id = ma.fields.Integer(strict=True, allow_none=True)
    product_id = ExternalId(allow_none=True, validate=validate.Length(max=100))
    tag = TagName(allow_none=True)
    actions = ma.fields.List(ActionField(), validate=validate.Length(min=1, max=20))
    enabled = JsonBoolean()


class AutomationOut(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    trigger = ma.fields.String()
    level_id = ma.fields.Integer(allow_none=True)
    product_id = ma.fields.String(allow_none=True)
    tag = ma.fields.String(allow_none=True)
    actions = ma.fields.List(ma.fields.Dict())
    enabled = JsonBoolean()
    default_key = ma.fields.String(allow_none=True, metadata={"description": "Set on the shipped default rules"})
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime()


class AutomationCatalogOut(ma.Schema):
    triggers = ma.fields.List(ma.fields.String())
    actions = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.List(ma.fields.String()),
                             metadata={"description": "Action type -> its fields"})
    emails = ma.fields.List(ma.fields.Dict(), metadata={"description": "Emails a send_email action may use"})
    placeholders = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.String())


class AutomationRunArgs(QueryArgs):
    rule_id = ma.fields.Integer()
    member_id = ma.fields.Integer()
    status = ma.fields.String(validate=validate.OneOf(["succeeded", "failed", "depth_limit"]))


class AutomationRunOut(ma.Schema):
    id = ma.fields.Integer()
    rule_id = ma.fields.Integer(allow_none=True)
    rule_name = ma.fields.String()
    trigger = ma.fields.String()
    event_key = ma.fields.String()
    event_id = ma.fields.Integer()
    member_id = ma.fields.Integer(allow_none=True)
    status = ma.fields.String()
    actions_taken = ma.fields.List(ma.fields.Dict())
    error = ma.fields.String(allow_none=True)
    created_at = ma.fields.DateTime()


# --- outgoing webhooks -----------------------------------------------------------------------------

# What automations.webhooks.validate_url checks, stated in the spec.
ENDPOINT_URL_SPEC = {"format": "uri", "pattern": ENDPOINT_URL_PATTERN,
                     "description": "An absolute http(s) URL."}


class WebhookEndpointIn(StrictSchema):
    url = ma.fields.String(required=True, validate=validate.Length(min=1, max=500), metadata=ENDPOINT_URL_SPEC)
    description = ma.fields.String(load_default="", validate=validate.Length(max=200))
    secret = ma.fields.String(validate=validate.Length(min=16, max=255),
                              metadata={"description": "Signing secret; generated when omitted. Shown once."})
    events = ma.fields.List(ma.fields.String(metadata={"enum": ["*", *TRIGGERS]}), load_default=lambda: ["*"],
                            metadata={"description": "Trigger names, or [\"*\"] for all"})
    enabled = JsonBoolean(load_default=True)


class WebhookEndpointUpdate(StrictSchema):
    url = ma.fields.String(validate=validate.Length(min=1, max=500), metadata=ENDPOINT_URL_SPEC)
    description = ma.fields.String(validate=validate.Length(max=200))
    secret = ma.fields.String(validate=validate.Length(min=16, max=255))
    events = ma.fields.List(ma.fields.String(metadata={"enum": ["*", *TRIGGERS]}))
    enabled = JsonBoolean()


class WebhookEndpointOut(ma.Schema):
    id = ma.fields.Integer()
    url = ma.fields.String()
    description = ma.fields.String()
    events = ma.fields.List(ma.fields.String())
    enabled = JsonBoolean()
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime()


class WebhookEndpointCreated(WebhookEndpointOut):
    secret = ma.fields.String(metadata={"description": "The signing secret: shown this once only"})


class WebhookAttemptOut(ma.Schema):
    id = ma.fields.Integer()
    attempted_at = ma.fields.DateTime()
    status_code = ma.fields.Integer(allow_none=True)
    error = ma.fields.String(allow_none=True)
    duration_ms = ma.fields.Integer()


class WebhookDeliveryArgs(QueryArgs):
    status = ma.fields.String(validate=validate.OneOf(["pending", "delivered", "failed"]))


class WebhookDeliveryOut(ma.Schema):
    id = ma.fields.Integer()
    endpoint_id = ma.fields.Integer()
    event_type = ma.fields.String()
    event_id = ma.fields.Integer(allow_none=True)
    status = ma.fields.String()
    attempt_count = ma.fields.Integer()
    next_attempt_at = ma.fields.DateTime(allow_none=True)
    last_status_code = ma.fields.Integer(allow_none=True)
    last_error = ma.fields.String(allow_none=True)
    redelivery_of = ma.fields.Integer(allow_none=True)
    created_at = ma.fields.DateTime()
    delivered_at = ma.fields.DateTime(allow_none=True)


class WebhookDeliveryDetailOut(WebhookDeliveryOut):
    body = ma.fields.String(metadata={"description": "The JSON body exactly as signed and sent"})
    attempts = ma.fields.List(ma.fields.Nested(WebhookAttemptOut))
