"""The "Invite to update card" panel on a member's page: send a card-update invitation, see each one's
state, revoke it. The billing domain does the work (``billing.invitations``)."""

from __future__ import annotations

from flask import flash, redirect, request, session, url_for
from sqlalchemy import select

from admin.auth import SESSION_KEY
from admin.pages.blueprint import MEMBER_SECTIONS, MemberSection, bp
from billing import card_updates, invitations
from billing.invitation_api import invite
from billing.models import LIVE_MANDATE_STATUSES, Mandate
from errors import CoursegateError
from extensions import db
from membership.errors import MemberNotFound
from membership.models import Member


NO_WAY_TO_PAY = ("No card on file and no subscription with our billing: there is no card to update. A buyer who "
                 "pays through a cart updates their card in the cart.")


def pays_us(db_session, member: Member) -> bool:
    """A card on file or a live subscription with our own billing: something a card update is for. A buyer
    who only ever paid through a cart updates their card there."""
    if card_updates.methods_on_file(db_session, member):
        return True
    return db_session.scalar(select(select(Mandate.id).where(
        Mandate.member_id == member.id, Mandate.status.in_(LIVE_MANDATE_STATUSES)).exists())) or False


def load(db_session, member: Member) -> dict:
    return {"invitations": invitations.list_for(db_session, member),
            "methods": card_updates.methods_on_file(db_session, member), "offer": pays_us(db_session, member),
            "unavailable": NO_WAY_TO_PAY,
            "sms": invitations.sms_configured(), "max_hours": invitations.MAX_HOURS}


MEMBER_SECTIONS.append(MemberSection("Invite to update card", "admin/_invitations.html", load))


def _back(member_id: int):
    return redirect(url_for("admin.member", member_id=member_id) + "#invitations")


@bp.post("/members/<int:member_id>/invitations")
def member_invite(member_id: int):
    member = db.session.get(Member, member_id)
    if member is None:
        raise MemberNotFound()
    if not pays_us(db.session, member):
        flash(NO_WAY_TO_PAY, "bad")
        return _back(member_id)
    channels = ["email"] + (["sms"] if request.form.get("sms") == "yes" else [])
    method_id = request.form.get("payment_method_id", type=int) or None
    hours = request.form.get("expires_in_hours", 48, type=int) or 48
    if not 1 <= hours <= invitations.MAX_HOURS:
        flash(f"The link must expire within 1 to {invitations.MAX_HOURS} hours.", "bad")
        return _back(member_id)
    try:
        invite(member, {"expires_in_hours": hours, "channels": channels, "payment_method_id": method_id},
               f"owner:{session.get(SESSION_KEY)}")
    except CoursegateError as error:
        db.session.rollback()
        flash(error.message, "bad")
        return _back(member_id)
    flash(f"Invitation sent to {member.email}.", "info")
    return _back(member_id)


@bp.post("/invitations/<int:invitation_id>/revoke")
def invitation_revoke(invitation_id: int):
    invitation = invitations.get(db.session, invitation_id)
    member_id = invitation.member_id
    try:
        invitations.revoke(db.session, invitation)
    except CoursegateError as error:
        db.session.rollback()
        flash(error.message, "bad")
        return _back(member_id)
    flash("Invitation revoked: the link no longer works.", "info")
    return _back(member_id)
