"""The member's billing page (``/account/billing``) and ``GET /api/v1/me/subscriptions``: every active
subscription, ours (live mandates) and Keap's side by side, each with its card and "Edit card".

Our card edit goes through the gateway's hosted capture (``/account/billing/cards/<id>``); Keap's through
``keap.pages``. Keap being down never hides our rows: the page says the external ones could not be loaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import marshmallow as ma
from flask import (Blueprint, abort, current_app, flash, redirect, render_template, request, session,
                   url_for)
from flask_smorest import Blueprint as ApiBlueprint
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload

from billing import card_updates, gateways, pauses
from billing.errors import GatewayRefused, MandateNotFound
from billing.models import BILLABLE_MANDATE_STATUSES, Mandate
from billing.periods import describe, format_money
from fulfillment import subscriptions as cart_subscriptions
from errors import CoursegateError, Unauthorized
from extensions import db, keep_private, protect_forms
from keap import subscriptions as keap_subscriptions
from keap.schemas import ExternalSourceOut, SubscriptionRowOut
from membership.auth import current_member
from membership.models import Member
from schemas_common import StrictSchema


@dataclass(frozen=True)
class OwnCard:
    brand: str
    last4: str
    exp_month: int
    exp_year: int
    payment_method_id: int

    @property
    def label(self) -> str:
        return f"{self.brand.title()} ending {self.last4}"

    @property
    def expiry(self) -> str:
        return f"{self.exp_month:02d}/{self.exp_year}"


@dataclass(frozen=True)
class OwnRow:
    subscription_id: str
    product_name: str
    status: str
    started_at: date | None
    renews_on: date | None
    amount: Decimal
    currency: str
    interval_unit: str
    interval_count: int
    price: str
    card: OwnCard | None
    source: str = "own"
    paused_until: date | None = None
    pause: pauses.PauseOffer | None = None  # None: the plan offers no pause, or it cannot pause now

    @property
    def max_pause_days(self) -> int | None:
        return self.pause.max_days if self.pause else None

    @property
    def interval_label(self) -> str:
        return "every " + describe(self.interval_unit, self.interval_count)


def own_rows(session: Session, member: Member) -> list[OwnRow]:
    """The member's active and past-due mandates, soonest renewal first."""
    mandates = session.scalars(
        select(Mandate).where(Mandate.member_id == member.id, Mandate.status.in_(BILLABLE_MANDATE_STATUSES))
        .options(joinedload(Mandate.plan), joinedload(Mandate.payment_method)).order_by(Mandate.id)).all()
    rows = []
    for m in mandates:
        pm = m.payment_method
        rows.append(OwnRow(
            subscription_id=str(m.id), product_name=m.plan.name, status="paused" if m.paused_at else m.status,
            started_at=m.signed_at.date() if m.signed_at else None,
            renews_on=m.current_period_end.date() if m.current_period_end else None,
            amount=(Decimal(m.amount) / 100).quantize(Decimal("0.01")), currency=m.currency.upper(),
            interval_unit=m.interval_unit, interval_count=m.interval_count,
            price=format_money(m.amount, m.currency),
            card=OwnCard(pm.brand, pm.last4, pm.exp_month, pm.exp_year, pm.id) if pm else None,
            paused_until=m.pause_until.date() if m.pause_until else None, pause=pauses.offer(m),
        ))
    rows.sort(key=lambda r: (r.renews_on or date.max, r.product_name))
    return rows


@dataclass(frozen=True)
class BillingView:
    own: list[OwnRow]
    keap: keap_subscriptions.ExternalSubscriptions
    cart: list[cart_subscriptions.CartSubscription]

    @property
    def empty(self) -> bool:
        return (not self.own and not self.cart and not (self.keap.status == "ok" and self.keap.rows)
                and self.keap.status != "unavailable")


def load(session: Session, member: Member) -> BillingView:
    """Every part of the page. May remember newly matched Keap contacts (flushes): the caller commits."""
    return BillingView(own_rows(session, member), keap_subscriptions.rows_for_member(session, member),
                       cart_subscriptions.rows_for_member(session, member))


def _signed_in() -> Member:
    member = current_member()
    if member is None:
        abort(401)
    return member


# --- the page and editing the card of our own mandates ------------------------------------------------------

bp = Blueprint("billing_cards", __name__)
CARD_CAPTURE_KEY = "billing_card_capture"


protect_forms(bp)
keep_private(bp)


@bp.get("/account/billing")
def billing():
    member = current_member()
    if member is None:
        return redirect(url_for("member_pages.login"))
    view = load(db.session, member)
    return render_template("billing/billing_page.html", member=member, view=view, own=view.own, keap=view.keap)


def account_link(session: Session, member: Member) -> Markup:
    """The /account section pointing at the billing page (``membership.account.register_account_section``)."""
    return Markup(render_template("billing/_billing_link.html"))


def _page_url(method_id: int) -> str:
    return current_app.config["SITE_URL"] + url_for("billing_cards.card", method_id=method_id)


@bp.get("/account/billing/cards/<int:method_id>")
def card(method_id: int):
    member = _signed_in()
    method = card_updates.method_of(db.session, member, method_id)
    used_by = card_updates.mandates_on(db.session, member, method)
    db.session.rollback()  # mandates_on locks rows; nothing to keep
    return render_template("billing/card.html", method=method, used_by=used_by,
                           can_change_expiry=card_updates.supports_expiry_update(method))


@bp.post("/account/billing/cards/<int:method_id>/replace")
def replace(method_id: int):
    """Off to the gateway's hosted page; it sends the member back to ``captured``."""
    member = _signed_in()
    method = card_updates.method_of(db.session, member, method_id)
    start = gateways.get(method.gateway).start_setup(
        db.session, email=member.email, customer_ref=method.customer_ref,
        description="Use this card for every subscription that used your card ending " + method.last4 + ".",
        return_url=current_app.config["SITE_URL"] + url_for("billing_cards.captured", method_id=method.id),
        cancel_url=_page_url(method.id))
    session[CARD_CAPTURE_KEY] = {"method": method.id, "ref": start.reference}
    return redirect(start.redirect_url)


@bp.get("/account/billing/cards/<int:method_id>/captured")
def captured(method_id: int):
    member = _signed_in()
    method = card_updates.method_of(db.session, member, method_id)
    capture = session.pop(CARD_CAPTURE_KEY, None)
    if not isinstance(capture, dict) or capture.get("method") != method.id:
        flash("The card form had expired; please add your card again.", "warn")
        return redirect(url_for("billing_cards.card", method_id=method.id))
    try:
        new_card = gateways.get(method.gateway).complete_setup(db.session, capture["ref"],
                                                               request.args.to_dict())
    except GatewayRefused as exc:
        db.session.rollback()  # the redirect would commit whatever the refused capture left
        flash(exc.message, "bad")
        return redirect(url_for("billing_cards.card", method_id=method.id))
    result = card_updates.replace_card(db.session, member, method, method.gateway, new_card)
    _flash_result(result)
    return redirect(url_for("billing_cards.billing"))


@bp.post("/account/billing/cards/<int:method_id>/expiry")
def expiry(method_id: int):
    member = _signed_in()
    method = card_updates.method_of(db.session, member, method_id)
    try:
        result = card_updates.update_expiry(db.session, member, method,
                                            request.form.get("exp_month", 0, type=int),
                                            request.form.get("exp_year", 0, type=int))
    except CoursegateError as exc:
        db.session.rollback()
        flash(exc.message, "bad")
        return redirect(url_for("billing_cards.card", method_id=method_id)), 303
    _flash_result(result)
    return redirect(url_for("billing_cards.billing"))


# --- pausing our own subscriptions -------------------------------------------------------------------

def _own_mandate(member: Member, mandate_id: int) -> Mandate:
    mandate = db.session.get(Mandate, mandate_id)
    if mandate is None or mandate.member_id != member.id:
        raise MandateNotFound()
    return mandate


@bp.post("/account/billing/subscriptions/<int:mandate_id>/pause")
def pause(mandate_id: int):
    member = _signed_in()
    mandate = _own_mandate(member, mandate_id)
    try:
        pauses.pause(db.session, mandate, request.form.get("days", 0, type=int))
    except CoursegateError as exc:
        db.session.rollback()
        flash(exc.message, "bad")
        return redirect(url_for("billing_cards.billing")), 303
    flash(f"{mandate.plan.name} is paused until {mandate.pause_until:%d %B %Y}: nothing is charged until then, "
          "and your next payment moves back by the days paused.", "info")
    return redirect(url_for("billing_cards.billing")), 303


@bp.post("/account/billing/subscriptions/<int:mandate_id>/resume")
def resume(mandate_id: int):
    member = _signed_in()
    mandate = _own_mandate(member, mandate_id)
    try:
        pauses.resume(db.session, mandate)
    except CoursegateError as exc:
        db.session.rollback()
        flash(exc.message, "bad")
        return redirect(url_for("billing_cards.billing")), 303
    flash(f"{mandate.plan.name} is running again.", "info")
    return redirect(url_for("billing_cards.billing")), 303


def _flash_result(result: card_updates.CardUpdate) -> None:
    flash(f"Your {result.method.brand.title()} ending {result.method.last4} is now used for "
          f"{len(result.mandates)} subscription(s). We have emailed you a confirmation.", "info")
    for attempt in result.attempts:
        if attempt.outcome == "succeeded":
            flash("The overdue payment went through. Thank you!", "info")
        else:
            flash("The overdue payment did not go through with the new card; see your invoices.", "warn")


# --- GET /api/v1/me/subscriptions -------------------------------------------------------------------

blp = ApiBlueprint("me_subscriptions", __name__, url_prefix="/api/v1",
                   description="The signed-in member's subscriptions (session cookie).")


def _edit_url(row) -> str | None:
    if row.source == "cart":
        return row.manage_url
    if row.source == "own":
        return url_for("billing_cards.card", method_id=row.card.payment_method_id) if row.card else None
    return url_for("keap_pages.card", subscription_id=row.subscription_id)


class MySubscriptionRowOut(SubscriptionRowOut):
    source = ma.fields.String(metadata={"description": "own (our billing) | keap | cart (billed by a cart, from "
                                                       "the orders it sent us)"})
    status = ma.fields.String(dump_default="active",
                              metadata={"description": "active | past_due | paused | cancelled (access continues "
                                                       "to access_until)"})
    edit_card_url = ma.fields.Function(_edit_url)
    manage_url = ma.fields.String(allow_none=True, dump_default=None,
                                  metadata={"description": "cart: where the member manages it (the cart's "
                                                           "customer hub)"})
    cart = ma.fields.String(allow_none=True, dump_default=None, metadata={"description": "cart: its name"})
    access_until = ma.fields.Date(allow_none=True, dump_default=None)
    paused_until = ma.fields.Date(allow_none=True, dump_default=None,
                                  metadata={"description": "own: paused until then (billing moves back)"})
    max_pause_days = ma.fields.Integer(allow_none=True, dump_default=None,
                                       metadata={"description": "own: the longest pause allowed now; null: cannot "
                                                                "pause (the plan offers none, or already paused)"})


class MySubscriptionsOut(ma.Schema):
    subscriptions = ma.fields.List(ma.fields.Nested(MySubscriptionRowOut))
    sources = ma.fields.List(ma.fields.Nested(ExternalSourceOut))


@blp.route("/me/subscriptions", methods=["GET"])
@blp.response(200, MySubscriptionsOut)
@blp.doc(security=[{"memberSession": []}])
def my_subscriptions():
    """Every active subscription of the signed-in member: ours, Keap's for Keap customers, and those a cart
    bills (from the orders it sent)."""
    member = _signed_in_api()
    view = load(db.session, member)
    sources = [{"source": "own", "status": "ok", "message": None}]
    if view.keap.status != "not_applicable":
        sources.append(view.keap)
    if view.cart:
        sources.append({"source": "cart", "status": "ok", "message": None})
    return ({"subscriptions": [*view.own, *view.keap.rows, *view.cart], "sources": sources}, 200,
            {"Cache-Control": "private, no-store"})


class PauseIn(StrictSchema):
    days = ma.fields.Integer(required=True, strict=True, validate=ma.validate.Range(min=1, max=365),
                             metadata={"description": "How long; at most the plan's max_pause_days"})


def _signed_in_api() -> Member:
    member = current_member()
    if member is None:
        raise Unauthorized("Sign in first: this endpoint uses the member's session cookie from /login.",
                           code="not_signed_in")
    return member


def _own_row(member: Member, mandate: Mandate) -> OwnRow:
    return next(row for row in own_rows(db.session, member) if row.subscription_id == str(mandate.id))


@blp.route("/me/subscriptions/<int:mandate_id>/pause", methods=["POST"])
@blp.arguments(PauseIn)
@blp.response(200, MySubscriptionRowOut)
@blp.alt_response(409, description="pause_not_allowed: the plan offers no pause, or it is paused already")
@blp.doc(security=[{"memberSession": []}])
def pause_subscription(data, mandate_id):
    """Pause one of the member's own subscriptions (not a cart's) for ``days``: no charge meanwhile; billing
    moves back by the days paused; access during the pause as the plan says."""
    member = _signed_in_api()
    mandate = _own_mandate(member, mandate_id)
    pauses.pause(db.session, mandate, data["days"])
    return _own_row(member, mandate), 200, {"Cache-Control": "private, no-store"}


@blp.route("/me/subscriptions/<int:mandate_id>/resume", methods=["POST"])
@blp.response(200, MySubscriptionRowOut)
@blp.alt_response(409, description="subscription_not_paused")
@blp.doc(security=[{"memberSession": []}])
def resume_subscription(mandate_id):
    """Resume a paused subscription now; the unused days of the pause are given back to billing."""
    member = _signed_in_api()
    mandate = _own_mandate(member, mandate_id)
    pauses.resume(db.session, mandate)
    return _own_row(member, mandate), 200, {"Cache-Control": "private, no-store"}
