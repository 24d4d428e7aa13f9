"""The page an invitation link opens: no login; only the masked card in question; add or replace it.

The link's token appears only in the first URL (logs name the route, not the path). The trip to the
gateway's hosted page and back is tied to this browser by the session cookie and to the invitation by the
setup reference stored on it, so the token never travels in a return URL.
"""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, session, url_for

from billing import card_updates, gateways, invitations
from billing.errors import GatewayRefused
from billing.models import CardInvitation, InvitationState
from extensions import db, keep_private, protect_forms

bp = Blueprint("card_invitation_pages", __name__)
SESSION_KEY = "card_invitation_capture"

PROBLEMS = {
    "invalid": (404, "This link is not valid",
                "Please check that you copied the whole link from the message."),
    "expired": (410, "This link has expired", "Please ask us for a new link to update your card."),
    "used": (410, "This link has already been used",
             "Your card was updated with it. Ask us for a new link if you need to change it again."),
    "revoked": (410, "This link was withdrawn", "Please ask us for a new link to update your card."),
}


protect_forms(bp)
keep_private(bp, cache_control="no-store")


def _problem(problem: str):
    status, title, message = PROBLEMS[problem]
    return render_template("billing/invitation_closed.html", title=title, message=message), status


def _page(invitation: CardInvitation, token: str, error: str | None = None, status: int = 200):
    member = invitation.member
    method = invitation.payment_method
    if method is None:
        on_file = card_updates.methods_on_file(db.session, member)
        method = on_file[0] if len(on_file) == 1 else None
    return render_template("billing/invitation.html", invitation=invitation, method=method, token=token,
                           keap_member=invitations.is_keap_member(member), error=error), status


@bp.get("/card-update/<token>")
def invitation_page(token: str):
    opened = invitations.open_link(db.session, token)
    if opened.problem:
        db.session.rollback()
        return _problem(opened.problem)
    # Opened stays recorded even when the page below fails: the owner's panel shows that the link was followed.
    db.session.commit()
    return _page(opened.invitation, token)


@bp.post("/card-update/<token>")
def start(token: str):
    """Off to the gateway's hosted page to capture the card."""
    opened = invitations.open_link(db.session, token)
    if opened.problem:
        db.session.rollback()
        return _problem(opened.problem)
    invitation = opened.invitation
    method = invitation.payment_method
    gateway = gateways.get(method.gateway if method else None)
    site = current_app.config["SITE_URL"]
    setup = gateway.start_setup(
        db.session, email=invitation.member.email, customer_ref=method.customer_ref if method else None,
        description="Save this card for your subscriptions with " + current_app.config["SITE_NAME"] + ".",
        return_url=site + url_for("card_invitation_pages.captured"),
        cancel_url=site + url_for("card_invitation_pages.cancelled"))
    invitation.setup_ref = setup.reference
    session[SESSION_KEY] = {"invitation": invitation.id, "ref": setup.reference, "gateway": gateway.name}
    return redirect(setup.redirect_url)


@bp.get("/card-update/done")
def captured():
    stored = session.get(SESSION_KEY)
    if not isinstance(stored, dict):
        return _problem("invalid")
    invitation = db.session.get(CardInvitation, stored.get("invitation"), with_for_update=True)
    if invitation is None or not invitation.setup_ref or invitation.setup_ref != stored.get("ref"):
        db.session.rollback()
        return _problem("invalid")
    state = invitation.state()
    if state != InvitationState.OPENED:
        db.session.rollback()
        return _problem({"completed": "used"}.get(state, state if state in PROBLEMS else "invalid"))
    gateway = gateways.get(stored["gateway"])
    try:
        card = gateway.complete_setup(db.session, invitation.setup_ref, request.args.to_dict())
    except GatewayRefused as exc:
        db.session.rollback()
        return render_template("billing/invitation_closed.html", title="The card was not saved",
                               message=exc.message + " Please open the link from your message again."), 422
    result = invitations.complete(db.session, invitation, gateway.name, card)
    # The card is saved and overdue invoices may have been charged at the gateway: that is kept even when the
    # page below fails to render.
    db.session.commit()
    session.pop(SESSION_KEY, None)
    return render_template("billing/invitation_done.html", result=result,
                           keap_member=invitations.is_keap_member(invitation.member))


@bp.get("/card-update/cancelled")
def cancelled():
    return render_template("billing/invitation_closed.html", title="No card was saved",
                           message="Open the link from your message again to add your card."), 200
