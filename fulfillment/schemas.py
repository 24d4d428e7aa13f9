"""marshmallow schemas for integrations and fulfillment rules."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from fulfillment import rules, services
from membership.schemas import LevelRef
from schemas_common import ExternalId, JsonBoolean, QueryArgs, StrictSchema

KINDS = ["thrivecart", "stripe", "generic", "keap"]
ITEM_TYPES = ["product", "bump", "upsell", "downsell"]


MANAGE_URL_SPEC = {"description": "Where members manage the subscriptions this cart bills (e.g. ThriveCart's "
                                  "customer hub); linked on /account/billing. null for none."}
ACCESS_EMAIL_SPEC = {"description": "Email an existing member who gains access through this cart (\"you now "
                                    "have access to ...\"); new members always get the welcome email."}


def manage_url_field(**kwargs) -> ma.fields.Url:
    return ma.fields.Url(allow_none=True, require_tld=False, schemes={"http", "https"},
                         validate=validate.Length(max=500), metadata=MANAGE_URL_SPEC, **kwargs)


class IntegrationIn(StrictSchema):
    kind = ma.fields.String(required=True, validate=validate.OneOf(KINDS))
    name = ma.fields.String(required=True, validate=validate.Length(min=1, max=200))
    secret = ma.fields.String(load_only=True, allow_none=True, validate=validate.Length(min=8, max=255),
                              metadata={"description": "ThriveCart secret word, Stripe whsec_ signing secret, or "
                                                       "the generic cart's signing secret (generated if omitted). "
                                                       "Keap: the key of the HTTP Post URL (generated if omitted; "
                                                       "see GET /integrations/{id}/keap-setup). Write-only."})
    api_key = ma.fields.String(load_only=True, allow_none=True, validate=validate.Length(max=255),
                               metadata={"description": "Stripe only: restricted key to read Checkout line items. "
                                                        "Write-only."})
    accept_test_orders = JsonBoolean(load_default=False)
    cancel_access = ma.fields.String(load_default="period_end",
                                     validate=validate.OneOf(["period_end", "immediately"]))
    grace_days = ma.fields.Integer(strict=True, load_default=7, validate=validate.Range(min=0, max=90))
    card_update_url = ma.fields.Url(allow_none=True, load_default=None, require_tld=False,
                                    metadata={"description": "Where a failed-payment email sends the member to "
                                                             "update their card"})
    external_source = ma.fields.String(allow_none=True, validate=validate.Length(min=1, max=100),
                                       metadata={"description": "Keap only: the external source an enrolment sets "
                                                                "on the member (default infusionsoft; the billing "
                                                                "page reads Keap subscriptions for infusionsoft and "
                                                                "keap)"})
    manage_subscriptions_url = manage_url_field(load_default=None)
    access_added_email = ma.fields.Boolean(load_default=False, metadata=ACCESS_EMAIL_SPEC)


class IntegrationUpdate(StrictSchema):
    name = ma.fields.String(validate=validate.Length(min=1, max=200))
    secret = ma.fields.String(load_only=True, validate=validate.Length(min=8, max=255))
    api_key = ma.fields.String(load_only=True, allow_none=True, validate=validate.Length(max=255))
    accept_test_orders = JsonBoolean()
    cancel_access = ma.fields.String(validate=validate.OneOf(["period_end", "immediately"]))
    grace_days = ma.fields.Integer(strict=True, validate=validate.Range(min=0, max=90))
    card_update_url = ma.fields.Url(allow_none=True, require_tld=False)
    external_source = ma.fields.String(allow_none=True, validate=validate.Length(min=1, max=100),
                                       metadata={"description": "Keap only: the external source an enrolment sets "
                                                                "on the member (default infusionsoft; the billing "
                                                                "page reads Keap subscriptions for infusionsoft and "
                                                                "keap)"})
    manage_subscriptions_url = manage_url_field()
    access_added_email = ma.fields.Boolean(metadata=ACCESS_EMAIL_SPEC)


class IntegrationOut(ma.Schema):
    id = ma.fields.Integer()
    kind = ma.fields.String()
    name = ma.fields.String()
    webhook_url = ma.fields.Function(rules.webhook_url)
    has_secret = ma.fields.Function(lambda i: bool(i.secret))
    accept_test_orders = JsonBoolean()
    cancel_access = ma.fields.String()
    grace_days = ma.fields.Integer()
    card_update_url = ma.fields.String(allow_none=True)
    external_source = ma.fields.Function(lambda i: rules.external_source(i) if i.kind == "keap" else None,
                                         metadata={"description": "Keap only: what an enrolment sets as the "
                                                                  "member's external source"})
    manage_subscriptions_url = ma.fields.String(allow_none=True)
    access_added_email = ma.fields.Boolean()
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime()


class IntegrationCreated(IntegrationOut):
    secret = ma.fields.String(allow_none=True, metadata={"description": "Shown once, at creation; never again."})


class KeapPair(ma.Schema):
    name = ma.fields.String()
    value = ma.fields.String()


class KeapExample(ma.Schema):
    action = ma.fields.String(metadata={"description": "enroll, revoke, tag or untag"})
    description = ma.fields.String()
    pairs = ma.fields.List(ma.fields.Nested(KeapPair))


class KeapSetupOut(ma.Schema):
    url = ma.fields.String(metadata={"description": "The Post URL for the campaign step, with its ?key=. It holds "
                                                   "the secret: paste it into Keap only."})
    pairs = ma.fields.List(ma.fields.Nested(KeapPair), metadata={"description": "The name/value pairs of an "
                                                                               "enrolment step"})
    examples = ma.fields.List(ma.fields.Nested(KeapExample))


class RuleIn(StrictSchema):
    product_id = ExternalId(required=True, validate=validate.Length(max=100),
                            metadata={"description": "The cart's product id (ThriveCart product number, Stripe "
                                                     "product or price id, generic product id)"})
    pricing_option_id = ExternalId(allow_none=True, load_default=None, validate=validate.Length(max=100),
                                   metadata={"description": "A pricing option (payment plan) id; null = every "
                                                            "option of the product"})
    item_type = ma.fields.String(load_default="product", validate=validate.OneOf(ITEM_TYPES))
    level_ids = ma.fields.List(ma.fields.Integer(strict=True), required=True, validate=validate.Length(min=1))


class RuleUpdate(StrictSchema):
    product_id = ExternalId(validate=validate.Length(max=100))
    pricing_option_id = ExternalId(allow_none=True, validate=validate.Length(max=100))
    item_type = ma.fields.String(validate=validate.OneOf(ITEM_TYPES))
    level_ids = ma.fields.List(ma.fields.Integer(strict=True), validate=validate.Length(min=1))


class RuleOut(ma.Schema):
    id = ma.fields.Integer()
    integration_id = ma.fields.Integer()
    product_id = ma.fields.String()
    pricing_option_id = ma.fields.String(allow_none=True)
    item_type = ma.fields.String()
    level_ids = ma.fields.Function(lambda rule: [level.id for level in rule.levels])
    levels = ma.fields.List(ma.fields.Nested(LevelRef))
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime()


EVENT_STATUSES = ["processed", "duplicate", "ignored", "needs_attention", "failed"]


class EventArgs(QueryArgs):
    integration_id = ma.fields.Integer(metadata={"description": "Only events of this integration"})
    status = ma.fields.String(validate=validate.OneOf(EVENT_STATUSES))
    email = ma.fields.String(metadata={"description": "Buyer email, any case"})


class EventOut(ma.Schema):
    id = ma.fields.Integer()
    integration_id = ma.fields.Integer(allow_none=True)
    provider = ma.fields.String(metadata={"description": "thrivecart, stripe, generic or keap"})
    event_type = ma.fields.String(metadata={"description": "The cart's event name, e.g. order.success"})
    status = ma.fields.String(metadata={"description": "processed, duplicate, ignored, needs_attention or failed"})
    dedupe_key = ma.fields.String(allow_none=True)
    duplicate_of_id = ma.fields.Integer(allow_none=True)
    test_mode = JsonBoolean()
    email = ma.fields.String(allow_none=True)
    order_ref = ma.fields.String(allow_none=True)
    attempts = ma.fields.Integer()
    last_error = ma.fields.String(allow_none=True, metadata={"description": "Why it needs attention or failed"})
    received_at = ma.fields.DateTime()
    processed_at = ma.fields.DateTime(allow_none=True)


class EventDetailOut(EventOut):
    content_type = ma.fields.String()
    headers = ma.fields.Dict(metadata={"description": "Request headers, minus signatures and cookies"})
    payload = ma.fields.Function(lambda row: services.stored_payload(row),
                                 metadata={"description": "The body as received, with the cart secret removed"})
