"""Our own documented format for any other cart (``GenericWebhookEvent`` in the OpenAPI spec)."""

from __future__ import annotations

from datetime import datetime

import marshmallow as ma
from marshmallow import validate

from fulfillment.errors import InvalidPayload
from fulfillment.parsers.events import ITEM_TYPES, Action, Line, OrderEvent, in_range, key_of
from schemas_common import ExternalId

# --- Generic (our own documented format) ------------------------------------------------------------

GENERIC_EVENTS = {
    "order.completed": Action.ORDER_COMPLETED,
    "line.refunded": Action.LINE_REFUNDED,
    "subscription.cancelled": Action.SUBSCRIPTION_CANCELLED,
    "payment.failed": Action.PAYMENT_FAILED,
    "payment.succeeded": Action.PAYMENT_SUCCEEDED,
    "subscription.paused": Action.SUBSCRIPTION_PAUSED,
    "subscription.resumed": Action.SUBSCRIPTION_RESUMED,
}


def _storable_date(moment: datetime) -> None:
    if in_range(moment) is None:
        raise ma.ValidationError("Out of range: give a date from 1970 to 9998.")


class GenericItem(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    type = ma.fields.String(load_default="product", validate=validate.OneOf(ITEM_TYPES),
                            metadata={"description": "product, bump, upsell or downsell"})
    product_id = ExternalId(required=True, validate=validate.Length(max=100),
                            metadata={"description": "Your cart's product id (what fulfillment rules match)"})
    pricing_option_id = ExternalId(allow_none=True, load_default=None, validate=validate.Length(max=100),
                                   metadata={"description": "Pricing option / plan id, if the cart has them"})
    line_id = ExternalId(allow_none=True, load_default=None, validate=validate.Length(max=100),
                         metadata={"description": "Identifies the line within the order for refunds; "
                                                  "default `<type>-<product_id>`"})
    subscription_id = ExternalId(allow_none=True, load_default=None, validate=validate.Length(max=100),
                                 metadata={"description": "The subscription this line renews under, if any"})
    name = ma.fields.String(allow_none=True, load_default=None, validate=validate.Length(max=300))


class GenericEventSchema(ma.Schema):
    """The generic cart webhook body. Sign it: ``X-Coursegate-Signature: t=<unix>,v1=<hex>`` where the hex is
    HMAC-SHA256 of ``"<t>.<raw body>"`` keyed with the integration's secret."""

    class Meta:
        unknown = ma.EXCLUDE

    event = ma.fields.String(required=True, validate=validate.OneOf(list(GENERIC_EVENTS)))
    id = ExternalId(load_default=None, validate=validate.Length(max=200),
                    metadata={"description": "Your unique id for this event: redeliveries with the same id are "
                                             "answered `duplicate`. Without it the key is built from event, order, "
                                             "invoice and line."})
    test = ma.fields.Boolean(load_default=False, metadata={"description": "A test order: granted only when the "
                                                                          "integration accepts test orders"})
    order_id = ExternalId(load_default=None, validate=validate.Length(max=100))
    email = ma.fields.String(load_default=None, validate=validate.Length(max=320))
    name = ma.fields.String(load_default="", validate=validate.Length(max=200))
    customer_id = ExternalId(load_default=None, validate=validate.Length(max=100),
                             metadata={"description": "Your cart's id for the buyer: a returning buyer who uses a "
                                                      "new email keeps one account"})
    items = ma.fields.List(ma.fields.Nested(GenericItem), load_default=list,
                           metadata={"description": "order.completed: every item bought"})
    item = ma.fields.Nested(GenericItem, load_default=None, allow_none=True,
                            metadata={"description": "line.refunded: the refunded line (omit to refund the "
                                                     "whole order); subscription events: the line, if no "
                                                     "subscription_id"})
    subscription_id = ExternalId(load_default=None, validate=validate.Length(max=100))
    invoice_id = ExternalId(load_default=None, validate=validate.Length(max=100),
                            metadata={"description": "payment.*: the invoice, part of the dedupe key"})
    period_end = ma.fields.AwareDateTime(load_default=None, allow_none=True,
                                         validate=_storable_date,
                                         metadata={"description": "subscription.cancelled: end of the paid period "
                                                                  "(1970 to 9998)"})

    @ma.validates_schema
    def _per_event(self, data, **kwargs):
        event = data.get("event")
        if event == "order.completed":
            errors = {}
            if not data.get("order_id"):
                errors["order_id"] = ["Required for order.completed."]
            if not data.get("email"):
                errors["email"] = ["Required for order.completed."]
            if not data.get("items"):
                errors["items"] = ["order.completed needs at least one item."]
            if errors:
                raise ma.ValidationError(errors)
        elif event == "line.refunded" and not data.get("order_id"):
            raise ma.ValidationError({"order_id": ["Required for line.refunded."]})
        elif event in GENERIC_EVENTS and event not in ("order.completed", "line.refunded"):
            if not data.get("subscription_id") and not (data.get("order_id") and data.get("item")):
                raise ma.ValidationError({"subscription_id": ["Give subscription_id, or order_id with item."]})
            if event.startswith("payment.") and not data.get("invoice_id") and not data.get("id"):
                # Without either, next month's payment would look like a redelivery of this one.
                raise ma.ValidationError({"invoice_id": ["Give invoice_id (or a unique id) for payment events."]})
            if event in ("subscription.paused", "subscription.resumed") and not data.get("id"):
                # A subscription may be paused more than once: only the event id tells a new pause from a retry.
                raise ma.ValidationError({"id": ["Give a unique id for pause and resume events."]})


def _generic_line(item: dict) -> Line:
    return Line(item["type"], item["product_id"], item["pricing_option_id"],
                line_ref=item["line_id"] or "", subscription_ref=item["subscription_id"], name=item["name"])


def generic_event(tree: dict) -> OrderEvent:
    try:
        data = GenericEventSchema().load(tree)
    except ma.ValidationError as error:
        raise InvalidPayload(errors=error.normalized_messages()) from None
    action = GENERIC_EVENTS[data["event"]]
    ev = OrderEvent(action, data["event"], test_mode=data["test"], email=data["email"], name=data["name"].strip(),
                    order_ref=data["order_id"], invoice_ref=data["invoice_id"],
                    subscription_ref=data["subscription_id"], effective_at=data["period_end"],
                    customer_ref=data["customer_id"])
    if action == Action.ORDER_COMPLETED:
        ev.lines = [_generic_line(item) for item in data["items"]]
        for line in ev.lines:
            line.subscription_ref = line.subscription_ref or ev.subscription_ref
    elif data["item"]:
        ev.lines = [_generic_line(data["item"])]
    line_part = ",".join(sorted(line.line_ref for line in ev.lines))
    ev.dedupe_key = key_of("generic", data["id"]) if data["id"] else key_of(
        data["event"], ev.order_ref, ev.invoice_ref, ev.subscription_ref, line_part)
    return ev

