"""Member pages for Keap subscriptions: the card update through Keap's hosted component.

``/account/billing/keap`` is a stand-alone view of the Keap rows; the member's billing page includes
``templates/keap/_subscriptions.html`` with the same result.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, make_response, redirect, render_template, session, url_for
from werkzeug.routing import BuildError

from extensions import csrf, db
from keap import cards, subscriptions
from keap.errors import NoNewCard, SubscriptionNotFound
from membership.auth import current_member
from membership.models import Member

bp = Blueprint("keap_pages", __name__)
bp.before_request(csrf.protect)

CAPTURE_KEY = "keap_card_capture"
EMBED_SCRIPT = "https://payments.keap.page/lib/payment-method-embed.js"


def _member() -> Member:
    member = current_member()
    if member is None:
        abort(401)
    return member


def billing_url() -> str:
    """The member's billing page (``billing_cards.billing``) when it is registered, else ours."""
    try:
        return url_for("billing_cards.billing")
    except BuildError:
        return url_for("keap_pages.overview")


def _private(response):
    # The page holds a payment-component session key: not for caches. (Its CSP: security.KEAP_CARD_POLICY.)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/account/billing/keap")
def overview():
    member = _member()
    keap = subscriptions.rows_for_member(db.session, member)
    return render_template("keap/billing.html", keap=keap)


@bp.get("/account/billing/keap/<subscription_id>/card")
def card(subscription_id: str):
    member = _member()
    row = subscriptions.find_row(db.session, member, subscription_id)
    # Before the card-capture calls to Keap: newly matched contact ids stay remembered when Keap then fails
    # (an error page rolls back).
    db.session.commit()
    session_key, capture = cards.begin_capture(row)
    session[CAPTURE_KEY] = capture.to_dict()
    response = make_response(render_template("keap/card.html", row=row, session_key=session_key,
                                             embed_script=EMBED_SCRIPT, back_url=billing_url()))
    return _private(response)


@bp.post("/account/billing/keap/<subscription_id>/card")
def confirm_card(subscription_id: str):
    member = _member()
    stored = session.get(CAPTURE_KEY)
    if not isinstance(stored, dict) or stored.get("subscription_id") != subscription_id:
        flash("The card form had expired; please add your card again.", "warn")
        return redirect(url_for("keap_pages.card", subscription_id=subscription_id))
    capture = cards.CaptureContext.from_dict(stored)
    # The cookie is signed, but the contact must still be one of this member's.
    if capture.contact_id not in subscriptions.remembered_contact_ids(db.session, member):
        raise SubscriptionNotFound()
    try:
        result = cards.apply_new_card(db.session, member, capture)
    except NoNewCard as exc:
        flash(exc.message, "warn")
        return redirect(url_for("keap_pages.card", subscription_id=subscription_id))
    if not result.failed:  # after a partial failure, pressing the button again moves the rest
        session.pop(CAPTURE_KEY, None)
    card = result.new_card
    if result.updated:
        flash(f"Your {card.label} is now used for {len(result.updated)} subscription(s). "
              "We have emailed you a confirmation.", "info")
    else:
        flash(f"Your {card.label} was saved. No subscription needed changing.", "info")
    if result.failed:
        flash(f"{len(result.failed)} subscription(s) could not be switched to the new card yet; "
              "please try again in a few minutes.", "warn")
    return redirect(billing_url())
