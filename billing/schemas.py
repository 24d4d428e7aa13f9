"""marshmallow schemas for the billing API: separate In (load) and Out (dump) schemas."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from schemas_common import QueryArgs, StrictSchema

INTERVAL_UNITS = ["day", "week", "month", "year"]
CURRENCY = validate.Regexp(r"^[A-Za-z]{3}$", error="Use a three-letter ISO 4217 code, e.g. 'usd'.")


class PlanIn(StrictSchema):
    name = ma.fields.String(required=True, validate=validate.Length(min=1, max=200))
    level_id = ma.fields.Integer(required=True, strict=True, metadata={"description": "The level the plan renews."})
    amount = ma.fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=100_000_000),
                               metadata={"description": "Price per interval in minor units (cents)."})
    currency = ma.fields.String(required=True, validate=CURRENCY)
    interval_unit = ma.fields.String(required=True, validate=validate.OneOf(INTERVAL_UNITS))
    interval_count = ma.fields.Integer(strict=True, load_default=1, validate=validate.Range(min=1, max=365))


class PlanUpdate(StrictSchema):
    """Only ``name`` can change; sending a different price or interval is a 409 ``plan_immutable``."""

    name = ma.fields.String(validate=validate.Length(min=1, max=200))
    amount = ma.fields.Integer(strict=True)
    currency = ma.fields.String()
    interval_unit = ma.fields.String()
    interval_count = ma.fields.Integer(strict=True)


class PlanOut(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    level_id = ma.fields.Integer()
    amount = ma.fields.Integer()
    currency = ma.fields.String()
    interval_unit = ma.fields.String()
    interval_count = ma.fields.Integer()
    state = ma.fields.String()
    signup_url = ma.fields.Method("get_signup_url")
    created_at = ma.fields.DateTime()
    deleted_at = ma.fields.DateTime(allow_none=True, metadata={"description": "When the plan was withdrawn; null "
                                                                              "while it is offered."})

    def get_signup_url(self, plan) -> str:
        from flask import current_app

        return f"{current_app.config['SITE_URL']}/plans/{plan.id}"


class PlanArgs(QueryArgs):
    state = ma.fields.String(validate=validate.OneOf(["active", "paused", "deleted"]))


class PaymentMethodOut(ma.Schema):
    brand = ma.fields.String()
    last4 = ma.fields.String()
    exp_month = ma.fields.Integer()
    exp_year = ma.fields.Integer()


class MandateOut(ma.Schema):
    id = ma.fields.Integer()
    member_id = ma.fields.Integer()
    plan_id = ma.fields.Integer()
    status = ma.fields.String()
    amount = ma.fields.Integer()
    currency = ma.fields.String()
    interval_unit = ma.fields.String()
    interval_count = ma.fields.Integer()
    gateway = ma.fields.String()
    payment_method = ma.fields.Nested(PaymentMethodOut, allow_none=True)
    authorisation_text = ma.fields.String()
    created_at = ma.fields.DateTime()
    signed_at = ma.fields.DateTime()
    current_period_end = ma.fields.DateTime()
    cancelled_at = ma.fields.DateTime()
    cancel_reason = ma.fields.String()


class MandateArgs(QueryArgs):
    status = ma.fields.String(validate=validate.OneOf(["pending_authorisation", "active", "past_due", "unpaid",
                                                       "cancelled", "expired"]))
    plan_id = ma.fields.Integer()
    member_id = ma.fields.Integer()


class AttemptOut(ma.Schema):
    id = ma.fields.Integer()
    outcome = ma.fields.String()
    amount = ma.fields.Integer()
    currency = ma.fields.String()
    gateway = ma.fields.String()
    gateway_ref = ma.fields.String()
    message = ma.fields.String()
    initiated_by = ma.fields.String()
    created_at = ma.fields.DateTime()


class InvoiceOut(ma.Schema):
    id = ma.fields.Integer()
    number = ma.fields.String()
    mandate_id = ma.fields.Integer()
    member_id = ma.fields.Integer()
    amount = ma.fields.Integer()
    currency = ma.fields.String()
    period_start = ma.fields.DateTime()
    period_end = ma.fields.DateTime()
    issued_at = ma.fields.DateTime()
    due_at = ma.fields.DateTime()
    status = ma.fields.String(metadata={"description": "Document status: open, paid, void, uncollectible."})
    payment_status = ma.fields.String(
        metadata={"description": "pending, failed, requires_action, succeeded, not_required."})
    next_attempt_at = ma.fields.DateTime()
    paid_at = ma.fields.DateTime()
    voided_at = ma.fields.DateTime()
    void_reason = ma.fields.String()
    attempts = ma.fields.List(ma.fields.Nested(AttemptOut))


class InvoiceArgs(QueryArgs):
    status = ma.fields.String(validate=validate.OneOf(["open", "paid", "void", "uncollectible"]))
    mandate_id = ma.fields.Integer()
    member_id = ma.fields.Integer()


class Empty(StrictSchema):
    """Actions take no body (an empty JSON object is fine)."""
