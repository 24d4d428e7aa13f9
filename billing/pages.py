"""Member pages for subscriptions: sign up to a plan, see and settle an invoice, cancel from the account."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for

import timeutil
from billing import charges, gateways, links, mandates, plans, queries
from billing.errors import InvoiceNotOpen, MandateNotCancellable, PlanNotAvailable
from billing.models import Invoice, InvoiceStatus, MandateStatus, PaymentStatus, PlanState
from billing.periods import describe, format_money
from extensions import db, protect_forms
from membership.auth import current_member
from security import safe_next

bp = Blueprint("billing_pages", __name__)


protect_forms(bp)


CARD_SETUP_KEY = "billing_card_setup"


# --- sign-up ---------------------------------------------------------------------------------------

@bp.route("/plans/<int:plan_id>", methods=["GET", "POST"])
def plan_signup(plan_id: int):
    plan = plans.get_plan(db.session, plan_id)
    if plan.state == PlanState.DELETED:
        abort(404)
    member = current_member()
    problems: list[str] = []
    form = {"email": request.form.get("email", "").strip(), "name": request.form.get("name", "").strip()}
    if request.method == "POST":
        if plan.state != PlanState.ACTIVE:
            raise PlanNotAvailable()
        email = member.email if member else form["email"]
        if not email:
            problems.append("Enter your email address.")
        if request.form.get("agree") != "yes":
            problems.append("Tick the box to agree to the authorisation.")
        if not problems:
            site = current_app.config["SITE_URL"]
            signup = mandates.sign_up(
                db.session, plan, email=email, name=form["name"],
                return_url=site + "/subscriptions/{mandate_id}/authorised",
                cancel_url=f"{site}/plans/{plan.id}",
            )
            return redirect(signup.redirect_url)
    return render_template(
        "billing/plan.html", plan=plan, member=member, form=form, problems=problems,
        price=format_money(plan.amount, plan.currency), interval=describe(plan.interval_unit, plan.interval_count),
        authorisation=mandates.authorisation_text(plan), open_for_signup=plan.state == PlanState.ACTIVE,
    ), (422 if problems else 200)


@bp.get("/subscriptions/<int:mandate_id>/authorised")
def signing_return(mandate_id: int):
    """Where the gateway sends the customer back after they authorised their card."""
    mandate = mandates.get_mandate(db.session, mandate_id)
    invoice = mandates.complete_signing(db.session, mandate, request.args.to_dict())
    return redirect(links.invoice_url(invoice.id, mandate.member_id))


# --- invoices --------------------------------------------------------------------------------------

def _invoice_for_viewer(invoice_id: int) -> tuple[Invoice, str]:
    """The invoice if this browser may see it: a signed link to it, or signed in as its member."""
    invoice = db.session.get(Invoice, invoice_id)
    if invoice is None:
        abort(404)
    token = request.values.get("t", "")
    if token and links.check_invoice_token(token, invoice_id) == invoice.member_id:
        return invoice, token
    member = current_member()
    if member is not None and member.id == invoice.member_id:
        return invoice, links.invoice_token(invoice.id, member.id)
    abort(404)  # not a 403: do not confirm that the invoice exists


def _back(invoice: Invoice, token: str):
    return redirect(url_for("billing_pages.invoice_page", invoice_id=invoice.id, t=token))


@bp.get("/invoices/<int:invoice_id>")
def invoice_page(invoice_id: int):
    invoice, token = _invoice_for_viewer(invoice_id)
    mandate = invoice.mandate
    chargeable = (invoice.status == InvoiceStatus.OPEN
                  and mandate.status in (MandateStatus.ACTIVE, MandateStatus.PAST_DUE))
    return render_template(
        "billing/invoice.html", invoice=invoice, mandate=mandate, token=token,
        amount=format_money(invoice.amount, invoice.currency),
        can_pay=chargeable and invoice.payment_status in (PaymentStatus.PENDING, PaymentStatus.FAILED)
        and invoice.due_at <= timeutil.now(),
        needs_auth=chargeable and invoice.payment_status == PaymentStatus.REQUIRES_ACTION,
        can_change_card=chargeable,
    )


@bp.post("/invoices/<int:invoice_id>/pay")
def pay_invoice(invoice_id: int):
    """Retry now with the card on file."""
    invoice, token = _invoice_for_viewer(invoice_id)
    attempt = charges.retry_now(db.session, invoice, initiated_by="customer")
    _flash_outcome(attempt.outcome)
    return _back(invoice, token)


@bp.post("/invoices/<int:invoice_id>/card")
def new_card(invoice_id: int):
    """Pay with a new card: the gateway's hosted page, then back here to charge it."""
    invoice, token = _invoice_for_viewer(invoice_id)
    if invoice.status != InvoiceStatus.OPEN:
        raise InvoiceNotOpen()
    mandate = invoice.mandate
    start = gateways.get(mandate.gateway).start_setup(
        db.session, email=mandate.member.email,
        customer_ref=mandate.payment_method.customer_ref if mandate.payment_method else None,
        description=mandate.authorisation_text,
        return_url=current_app.config["SITE_URL"] + url_for("billing_pages.card_return", invoice_id=invoice.id,
                                                            t=token),
        cancel_url=current_app.config["SITE_URL"] + url_for("billing_pages.invoice_page", invoice_id=invoice.id,
                                                            t=token),
    )
    session[CARD_SETUP_KEY] = {"invoice": invoice.id, "ref": start.reference}
    return redirect(start.redirect_url)


@bp.get("/invoices/<int:invoice_id>/card/return")
def card_return(invoice_id: int):
    invoice, token = _invoice_for_viewer(invoice_id)
    setup = session.pop(CARD_SETUP_KEY, None)
    if not setup or setup.get("invoice") != invoice.id:
        abort(404)
    mandates.replace_card(db.session, invoice.mandate, setup["ref"], request.args.to_dict())
    # The new card is kept even when the charge that follows is refused (a busy or closed invoice is an error
    # page, which rolls back).
    db.session.commit()
    attempt = charges.retry_now(db.session, invoice, initiated_by="customer")
    _flash_outcome(attempt.outcome)
    return _back(invoice, token)


@bp.post("/invoices/<int:invoice_id>/authenticate")
def authenticate(invoice_id: int):
    invoice, token = _invoice_for_viewer(invoice_id)
    if invoice.payment_status != PaymentStatus.REQUIRES_ACTION or not invoice.action_ref:
        return _back(invoice, token)
    return_url = current_app.config["SITE_URL"] + url_for("billing_pages.authenticated", invoice_id=invoice.id,
                                                          t=token)
    method = invoice.mandate.payment_method
    url = gateways.get(invoice.mandate.gateway).start_authentication(
        db.session, invoice.action_ref, return_url=return_url, payment_method=method.token if method else None)
    return redirect(url)


@bp.get("/invoices/<int:invoice_id>/authenticated")
def authenticated(invoice_id: int):
    invoice, token = _invoice_for_viewer(invoice_id)
    attempt = charges.confirm_authentication(db.session, invoice)
    if attempt is not None:
        _flash_outcome(attempt.outcome)
    return _back(invoice, token)


def _flash_outcome(outcome: str) -> None:
    messages = {
        "succeeded": ("Thank you: the payment went through.", "info"),
        "requires_action": ("Your bank asks you to confirm this payment.", "warn"),
        "gateway_error": ("The payment provider did not answer; please try again in a moment.", "warn"),
        "processing": ("Your payment is being processed; this page shows the result once it is known.", "info"),
        "unknown": ("We are checking with the payment provider whether the payment went through; you will not "
                    "be charged twice.", "info"),
    }
    message, category = messages.get(outcome, ("The payment did not go through. Try another card.", "bad"))
    flash(message, category)


# --- the member's subscriptions --------------------------------------------------------------------

@bp.get("/subscriptions")
def subscriptions():
    member = current_member()
    if member is None:
        abort(401)
    return render_template("billing/subscriptions.html", member=member,
                           summary=queries.account_summary(db.session, member.id))


@bp.post("/subscriptions/<int:mandate_id>/cancel")
def cancel(mandate_id: int):
    member = current_member()
    if member is None:
        abort(401)
    mandate = mandates.get_mandate(db.session, mandate_id)
    if mandate.member_id != member.id:
        abort(404)
    try:
        mandates.cancel_mandate(db.session, mandate, reason="customer_cancelled")
    except MandateNotCancellable as error:
        db.session.rollback()  # the redirect would commit whatever the refused cancel left
        flash(error.message, "warn")
    else:
        flash(f"Your subscription to {mandate.plan.name} is cancelled; you will not be charged again.", "info")
    return redirect(safe_next(request.form.get("next"), "billing_pages.subscriptions"))
