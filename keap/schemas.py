"""JSON shapes for the member's subscriptions (``GET /api/v1/me/subscriptions``), reusable by our billing."""

from __future__ import annotations

import marshmallow as ma
from flask import url_for

from keap.subscriptions import ExternalSubscriptions


class CardOut(ma.Schema):
    brand = ma.fields.String(allow_none=True)
    last4 = ma.fields.String(allow_none=True)
    exp_month = ma.fields.Integer(allow_none=True)
    exp_year = ma.fields.Integer(allow_none=True)


def _edit_card_url(row) -> str | None:
    return url_for("keap_pages.card", subscription_id=row.subscription_id) if row.source == "keap" else None


class SubscriptionRowOut(ma.Schema):
    source = ma.fields.String(metadata={"description": "keap | own"})
    id = ma.fields.String(attribute="subscription_id")
    product_name = ma.fields.String()
    started_at = ma.fields.Date(allow_none=True)
    renews_on = ma.fields.Date(allow_none=True)
    amount = ma.fields.Decimal(as_string=True, allow_none=True)
    currency = ma.fields.String()
    interval_unit = ma.fields.String(allow_none=True, metadata={"description": "day | week | month | year"})
    interval_count = ma.fields.Integer()
    card = ma.fields.Nested(CardOut, allow_none=True)
    edit_card_url = ma.fields.Function(_edit_card_url)


class ExternalSourceOut(ma.Schema):
    source = ma.fields.String()
    status = ma.fields.String(metadata={"description": "ok | unavailable | not_applicable"})
    message = ma.fields.String(allow_none=True)


def api_payload(result: ExternalSubscriptions) -> dict:
    """``{"subscriptions": [...], "sources": [...]}`` for the Keap part; the lead merges our own rows in."""
    return {"subscriptions": SubscriptionRowOut(many=True).dump(result.rows),
            "sources": [ExternalSourceOut().dump(result)] if result.status != "not_applicable" else []}
