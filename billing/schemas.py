"""marshmallow schemas for the billing API: separate In (load) and Out (dump) schemas."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from schemas_common import QueryArgs, StrictSchema

INTERVAL_UNITS = ["day", "week", "month", "year"]
CURRENCY = validate.Regexp(r"^[A-Za-z]{3}$", error="Use a three-letter ISO 4217 code, e.g. 'usd'.")


PAUSE_DAYS_SPEC = {"description": "Members may pause their subscription for up to this many days (from their "
                                  "billing page or POST /api/v1/me/subscriptions/{id}/pause); null: no pausing."}
ACCESS_DURING_PAUSE_SPEC = {"description": "Whether the level stays open while the subscription is paused."}


class PlanIn(StrictSchema):
    name = ma.fields.String(required=True, validate=validate.Length(min=1, max=200))
    level_id = ma.fields.Integer(required=True, strict=True, metadata={"description": "The level the plan renews."})
    amount = ma.fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=100_000_000),
                               metadata={"description": "Price per interval in minor units (cents)."})
    currency = ma.fields.String(required=True, validate=CURRENCY)
    interval_unit = ma.fields.String(required=True, validate=validate.OneOf(INTERVAL_UNITS))
    interval_count = ma.fields.Integer(strict=True, load_default=1, validate=validate.Range(min=1, max=365))
    max_pause_days = ma.fields.Integer(strict=True, allow_none=True, load_default=None,
                                       validate=validate.Range(min=1, max=365), metadata=PAUSE_DAYS_SPEC)
    access_during_pause = ma.fields.Boolean(load_default=False, metadata=ACCESS_DURING_PAUSE_SPEC)


class PlanUpdate(StrictSchema):
    """The name and the pause settings can change; a different price or interval is a 409 ``plan_immutable``."""

    name = ma.fields.String(validate=validate.Length(min=1, max=200))
    max_pause_days = ma.fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1, max=365),
                                       metadata=PAUSE_DAYS_SPEC)
    access_during_pause = ma.fields.Boolean(metadata=ACCESS_DURING_PAUSE_SPEC)
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
    max_pause_days = ma.fields.Integer(allow_none=True, metadata=PAUSE_DAYS_SPEC)
    access_during_pause = ma.fields.Boolean(metadata=ACCESS_DURING_PAUSE_SPEC)
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
    paused_at = ma.fields.DateTime(allow_none=True)
    pause_until = ma.fields.DateTime(allow_none=True, metadata={"description": "A member's pause ends (and billing "
                                                                                "resumes) then"})


class MandateArgs(QueryArgs):
    status = ma.fields.String(validate=validate.OneOf(["pending_authorisation", "active", "past_due", "unpaid",
                                                       "cancelled", "expired"]))
    plan_id = ma.fields.Integer()
    member_id = ma.fields.Integer()


class AttemptOut(ma.Schema):
    id = ma.fields.Integer()
    outcome = ma.fields.String(metadata={"description": "succeeded, failed_retryable, failed_hard, requires_action, "
                                                        "gateway_error (nothing charged), unknown (the answer was "
                                                        "lost; being looked up), processing."})
    amount = ma.fields.Integer()
    currency = ma.fields.String()
    gateway = ma.fields.String()
    gateway_ref = ma.fields.String()
    message = ma.fields.String()
    initiated_by = ma.fields.String()
    created_at = ma.fields.DateTime()
    settled_at = ma.fields.DateTime(metadata={"description": "When an unknown or processing outcome was settled."})


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
        metadata={"description": "pending, failed, requires_action, succeeded, not_required, processing (charged "
                                 "or maybe charged; settles from the gateway, never charged again meanwhile)."})
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


# --- reports -------------------------------------------------------------------------------------------

class MoneyAtRiskArgs(QueryArgs):
    months = ma.fields.Integer(load_default=12, validate=validate.Range(min=1, max=36),
                               metadata={"description": "Calendar months (UTC) ending with this one."})
    currency = ma.fields.String(load_default=None, validate=CURRENCY,
                                metadata={"description": "Our amounts in this currency; default: most plans'."})


class FailureTallyOut(ma.Schema):
    failed = ma.fields.Integer(metadata={"description": "Payments that first failed in the month."})
    recovered = ma.fields.Integer(metadata={"description": "... paid within the grace period."})
    lapsed = ma.fields.Integer(metadata={"description": "... whose grace period ended unpaid."})
    in_grace = ma.fields.Integer(metadata={"description": "... still within the grace period, unpaid."})


class MoneyAtRiskMonthOut(ma.Schema):
    month = ma.fields.String(attribute="label", metadata={"description": "YYYY-MM (UTC)."})
    carts = ma.fields.Nested(FailureTallyOut, metadata={"description": "Carts' failed rebills (counts only: "
                                                                       "carts do not send the amount)."})
    ours = ma.fields.Nested(FailureTallyOut, metadata={"description": "Our own invoices."})
    at_risk_amount = ma.fields.Integer(metadata={"description": "Our failed invoices, minor units."})
    kept_amount = ma.fields.Integer(metadata={"description": "... recovered within the grace period."})
    lost_amount = ma.fields.Integer(metadata={"description": "... lapsed."})
    mrr = ma.fields.Integer(metadata={"description": "Monthly recurring revenue of our subscriptions at the "
                                                     "month's end (now, for this month), minor units."})
    active_subscriptions = ma.fields.Integer()
    churned = ma.fields.Integer(metadata={"description": "Our subscriptions cancelled in the month."})
    churned_mrr = ma.fields.Integer()
    churn_rate = ma.fields.Float(allow_none=True, metadata={
        "description": "Percent of the subscriptions active when the month began; null when there were none."})


class MoneyAtRiskOut(ma.Schema):
    currency = ma.fields.String()
    grace_days = ma.fields.Integer(metadata={"description": "Our billing's grace period (carts use each "
                                                            "integration's grace_days)."})
    months = ma.fields.List(ma.fields.Nested(MoneyAtRiskMonthOut), metadata={"description": "Oldest first."})
