"""Owner API for plans, mandates and invoices. Mandates are created only by customers signing up."""

from __future__ import annotations

from flask_smorest import Blueprint
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from billing import charges, invoices, mandates, plans, reports
from billing.models import Invoice, Mandate, Plan
from billing.schemas import (InvoiceArgs, InvoiceOut, MandateArgs, MandateOut, MoneyAtRiskArgs, MoneyAtRiskOut,
                             PlanArgs, PlanIn, PlanOut, PlanUpdate)
from extensions import db
from membership import auth
from pagination import PAGE_SIZE, SelectPage

blp = Blueprint("billing_api", __name__, url_prefix="/api/v1",
                description="Subscriptions: plans, the mandates customers sign, and their invoices.")
blp.before_request(auth.require_owner)


# --- plans -----------------------------------------------------------------------------------------

@blp.route("/plans", methods=["GET"])
@blp.arguments(PlanArgs, location="query", as_kwargs=True)
@blp.response(200, PlanOut(many=True))
@blp.paginate(SelectPage, **PAGE_SIZE)
def list_plans(state=None):
    query = select(Plan).order_by(Plan.id)
    if state:
        query = query.where(Plan.state == state)
    return query


@blp.route("/plans", methods=["POST"])
@blp.arguments(PlanIn)
@blp.response(201, PlanOut)
def create_plan(data):
    """Create a plan. Its price and interval can never change afterwards."""
    plan = plans.create_plan(db.session, **data)
    return plan


@blp.route("/plans/<int:plan_id>", methods=["GET"])
@blp.response(200, PlanOut)
def get_plan(plan_id):
    return plans.get_plan(db.session, plan_id)


@blp.route("/plans/<int:plan_id>", methods=["PATCH"])
@blp.arguments(PlanUpdate)
@blp.response(200, PlanOut)
@blp.alt_response(409, description="plan_immutable: price and interval never change")
def update_plan(data, plan_id):
    """Rename a plan. A different amount, currency or interval is refused with 409 ``plan_immutable``."""
    plan = plans.update_plan(db.session, plans.get_plan(db.session, plan_id), data)
    return plan


@blp.route("/plans/<int:plan_id>/pause", methods=["POST"])
@blp.response(200, PlanOut)
def pause_plan(plan_id):
    """No new sign-ups; existing subscriptions keep billing."""
    plan = plans.pause_plan(db.session, plans.get_plan(db.session, plan_id))
    return plan


@blp.route("/plans/<int:plan_id>/resume", methods=["POST"])
@blp.response(200, PlanOut)
def resume_plan(plan_id):
    plan = plans.resume_plan(db.session, plans.get_plan(db.session, plan_id))
    return plan


@blp.route("/plans/<int:plan_id>", methods=["DELETE"])
@blp.response(200, PlanOut)
def delete_plan(plan_id):
    """Delete: cancels every live subscription (reason ``plan_deleted``), voids open invoices, emails customers."""
    plan = plans.delete_plan(db.session, plans.get_plan(db.session, plan_id))
    return plan


# --- mandates --------------------------------------------------------------------------------------

@blp.route("/mandates", methods=["GET"])
@blp.arguments(MandateArgs, location="query", as_kwargs=True)
@blp.response(200, MandateOut(many=True))
@blp.paginate(SelectPage, **PAGE_SIZE)
def list_mandates(status=None, plan_id=None, member_id=None):
    query = select(Mandate).options(selectinload(Mandate.payment_method)).order_by(Mandate.id)
    if status:
        query = query.where(Mandate.status == status)
    if plan_id is not None:
        query = query.where(Mandate.plan_id == plan_id)
    if member_id is not None:
        query = query.where(Mandate.member_id == member_id)
    return query


@blp.route("/mandates/<int:mandate_id>", methods=["GET"])
@blp.response(200, MandateOut)
def get_mandate(mandate_id):
    return mandates.get_mandate(db.session, mandate_id)


@blp.route("/mandates/<int:mandate_id>/cancel", methods=["POST"])
@blp.response(200, MandateOut)
def cancel_mandate(mandate_id):
    """Cancel a subscription: no further charges; access runs to the end of the paid period."""
    mandate = mandates.cancel_mandate(db.session, mandates.get_mandate(db.session, mandate_id),
                                      reason="owner_cancelled")
    return mandate


# --- invoices --------------------------------------------------------------------------------------

@blp.route("/invoices", methods=["GET"])
@blp.arguments(InvoiceArgs, location="query", as_kwargs=True)
@blp.response(200, InvoiceOut(many=True))
@blp.paginate(SelectPage, **PAGE_SIZE)
def list_invoices(status=None, mandate_id=None, member_id=None):
    query = select(Invoice).options(selectinload(Invoice.attempts)).order_by(Invoice.id)
    if status:
        query = query.where(Invoice.status == status)
    if mandate_id is not None:
        query = query.where(Invoice.mandate_id == mandate_id)
    if member_id is not None:
        query = query.where(Invoice.member_id == member_id)
    return query


@blp.route("/invoices/<int:invoice_id>", methods=["GET"])
@blp.response(200, InvoiceOut)
def get_invoice(invoice_id):
    return invoices.get_invoice(db.session, invoice_id)


@blp.route("/invoices/<int:invoice_id>/void", methods=["POST"])
@blp.response(200, InvoiceOut)
def void_invoice(invoice_id):
    """Void an open invoice: it will not be charged."""
    invoice = invoices.void_invoice(db.session, invoices.get_invoice(db.session, invoice_id), "owner_voided")
    return invoice


@blp.route("/invoices/<int:invoice_id>/retry", methods=["POST"])
@blp.response(200, InvoiceOut)
def retry_invoice(invoice_id):
    """Charge an open invoice now with the subscription's card; the attempt's outcome is in ``attempts``."""
    invoice = invoices.get_invoice(db.session, invoice_id)
    charges.retry_now(db.session, invoice, initiated_by="owner")
    return invoice


# --- reports -----------------------------------------------------------------------------------------

@blp.route("/reports/money-at-risk", methods=["GET"])
@blp.arguments(MoneyAtRiskArgs, location="query", as_kwargs=True)
@blp.response(200, MoneyAtRiskOut)
def money_at_risk(months=12, currency=None):
    """Failed payments by month (carts' rebill failures and our invoices): recovered within the grace period,
    lapsed, or still in grace, with the revenue kept and lost; and our plans' MRR and churn. The admin's
    "Money at risk" page shows the same figures."""
    return reports.money_at_risk(db.session, months=months, currency=currency)
