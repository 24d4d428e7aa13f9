"""Own subscriptions: plans (create, rename, pause, resume, delete), mandates (view, cancel) and invoices (view,
void, retry), through the billing services so refusals read as they do on the API."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Callable

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from wtforms import SelectChoice

from admin.forms import PlanForm, PlanRenameForm
from admin.pages.blueprint import bp, form_status, paginate, submit
from billing import charges as billing_charges
from billing import invoices as billing_invoices
from billing import mandates as billing_mandates
from billing import plans as billing_plans
from billing.errors import PlanImmutable
from billing.models import Invoice, InvoiceStatus, Mandate, MandateStatus, Plan, PlanState
from errors import CoursegateError
from extensions import db
from membership.models import Level


def money(amount: int, currency: str) -> str:
    """Minor units as the owner reads them: ``4900, "usd"`` -> ``49.00 USD``."""
    return f"{Decimal(amount) / 100:,.2f} {currency.upper()}"


def interval(count: int, unit: str) -> str:
    return f"every {unit}" if count == 1 else f"every {count} {unit}s"


@bp.app_template_global("admin_money")
def _money(amount: int, currency: str) -> str:
    return money(amount, currency)


@bp.app_template_global("admin_interval")
def _interval(count: int, unit: str) -> str:
    return interval(count, unit)


def _act(action: Callable[[], object], done: str, back: str) -> object:
    """A button post: run the service (the request commits once the page answers); a refusal is rolled back and
    flashed with the API's message."""
    try:
        action()
    except CoursegateError as error:
        db.session.rollback()
        flash(error.message, "bad")
        return redirect(back)
    flash(done)
    return redirect(back)


# --- plans ------------------------------------------------------------------------------------------

def _plan_form() -> PlanForm:
    form = PlanForm()
    form.level_id.choices = [SelectChoice(0, "Choose a level…")] + [
        SelectChoice(level.id, level.name) for level in db.session.scalars(select(Level).order_by(Level.name))]
    return form


@bp.route("/plans", methods=["GET", "POST"])
def plans():
    form = _plan_form()
    plan = submit(form, lambda: billing_plans.create_plan(
        db.session, name=form.name.data, level_id=form.level_id.data,
        amount=int((form.amount.data * 100).to_integral_value(ROUND_HALF_UP)),
        currency=form.currency.data, interval_unit=form.interval_unit.data, interval_count=form.interval_count.data,
        **form.pause_settings()), default_field="level_id")
    if plan:
        flash(f"Plan “{plan.name}” created: {money(plan.amount, plan.currency)} "
              f"{interval(plan.interval_count, plan.interval_unit)}.")
        return redirect(url_for("admin.plan", plan_id=plan.id))
    state = request.args.get("state", "")
    query = select(Plan).order_by(Plan.id.desc())
    if state in {s.value for s in PlanState}:
        query = query.where(Plan.state == state)
    else:
        state = ""
    return render_template("admin/plans.html", page=paginate(query), form=form, state=state,
                           states=list(PlanState), immutable=PlanImmutable.message), form_status(form)


@bp.route("/plans/<int:plan_id>", methods=["GET", "POST"])
def plan(plan_id: int):
    plan = billing_plans.get_plan(db.session, plan_id)
    form = PlanRenameForm(obj=plan)
    if submit(form, lambda: billing_plans.update_plan(db.session, plan,
                                                      {"name": form.name.data, **form.pause_settings()})):
        flash(f"Plan “{plan.name}” saved.")
        return redirect(url_for("admin.plan", plan_id=plan.id))
    page = paginate(select(Mandate).options(selectinload(Mandate.payment_method), selectinload(Mandate.member))
                    .where(Mandate.plan_id == plan.id).order_by(Mandate.id.desc()))
    return render_template("admin/plan.html", plan=plan, form=form, page=page,
                           immutable=PlanImmutable.message), form_status(form)


@bp.post("/plans/<int:plan_id>/pause")
def plan_pause(plan_id: int):
    plan = billing_plans.get_plan(db.session, plan_id)
    return _act(lambda: billing_plans.pause_plan(db.session, plan),
                f"Plan “{plan.name}” paused: no new sign-ups; existing subscriptions keep billing.",
                url_for("admin.plan", plan_id=plan.id))


@bp.post("/plans/<int:plan_id>/resume")
def plan_resume(plan_id: int):
    plan = billing_plans.get_plan(db.session, plan_id)
    return _act(lambda: billing_plans.resume_plan(db.session, plan),
                f"Plan “{plan.name}” is open for sign-ups again.", url_for("admin.plan", plan_id=plan.id))


@bp.post("/plans/<int:plan_id>/delete")
def plan_delete(plan_id: int):
    plan = billing_plans.get_plan(db.session, plan_id)
    return _act(lambda: billing_plans.delete_plan(db.session, plan),
                f"Plan “{plan.name}” deleted; its live subscriptions are cancelled and their customers emailed.",
                url_for("admin.plan", plan_id=plan.id))


# --- mandates ---------------------------------------------------------------------------------------

@bp.get("/subscriptions")
def mandates():
    query = (select(Mandate).options(selectinload(Mandate.payment_method), selectinload(Mandate.member))
             .order_by(Mandate.id.desc()))
    status = request.args.get("status", "")
    if status in {s.value for s in MandateStatus}:
        query = query.where(Mandate.status == status)
    else:
        status = ""
    plan_id = request.args.get("plan_id", type=int)
    if plan_id:
        query = query.where(Mandate.plan_id == plan_id)
    return render_template("admin/mandates.html", page=paginate(query), status=status,
                           statuses=list(MandateStatus))


@bp.get("/subscriptions/<int:mandate_id>")
def mandate(mandate_id: int):
    mandate = billing_mandates.get_mandate(db.session, mandate_id)
    invoices = list(db.session.scalars(select(Invoice).where(Invoice.mandate_id == mandate.id)
                                       .order_by(Invoice.id.desc()).limit(50)))
    return render_template("admin/mandate.html", mandate=mandate, invoices=invoices)


@bp.post("/subscriptions/<int:mandate_id>/cancel")
def mandate_cancel(mandate_id: int):
    mandate = billing_mandates.get_mandate(db.session, mandate_id)
    return _act(lambda: billing_mandates.cancel_mandate(db.session, mandate, reason="owner_cancelled"),
                f"Subscription #{mandate.id} cancelled: no further charges; access runs to the end of the paid "
                "period.", url_for("admin.mandate", mandate_id=mandate.id))


# --- invoices ---------------------------------------------------------------------------------------

@bp.get("/invoices")
def invoices():
    query = select(Invoice).options(selectinload(Invoice.mandate)).order_by(Invoice.id.desc())
    status = request.args.get("status", "")
    if status in {s.value for s in InvoiceStatus}:
        query = query.where(Invoice.status == status)
    else:
        status = ""
    return render_template("admin/invoices.html", page=paginate(query), status=status,
                           statuses=list(InvoiceStatus))


@bp.get("/invoices/<int:invoice_id>")
def invoice(invoice_id: int):
    return render_template("admin/invoice.html", invoice=billing_invoices.get_invoice(db.session, invoice_id))


@bp.post("/invoices/<int:invoice_id>/void")
def invoice_void(invoice_id: int):
    invoice = billing_invoices.get_invoice(db.session, invoice_id)
    return _act(lambda: billing_invoices.void_invoice(db.session, invoice, "owner_voided"),
                f"Invoice {invoice.number} voided: it will not be charged.",
                url_for("admin.invoice", invoice_id=invoice.id))


@bp.post("/invoices/<int:invoice_id>/retry")
def invoice_retry(invoice_id: int):
    invoice = billing_invoices.get_invoice(db.session, invoice_id)
    back = url_for("admin.invoice", invoice_id=invoice.id)
    try:
        attempt = billing_charges.retry_now(db.session, invoice, initiated_by="owner")
    except CoursegateError as error:
        db.session.rollback()
        flash(error.message, "bad")
        return redirect(back)
    outcome, message = str(attempt.outcome), attempt.message
    flash(f"Charged invoice {invoice.number}: {outcome.replace('_', ' ')}." + (f" {message}" if message else ""),
          "good" if outcome == "succeeded" else "warn")
    return redirect(back)
