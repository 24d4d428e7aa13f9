"""Owner API for update-by-invitation: invite a member to add or replace a card, see the state, revoke."""

from __future__ import annotations

import marshmallow as ma
from flask import g
from flask_smorest import Blueprint
from marshmallow import validate

import jobs
from billing import invitations, tasks
from billing.models import CardInvitation
from extensions import db
from membership import auth
from membership.errors import MemberNotFound
from membership.models import Member
from schemas_common import StrictSchema

blp = Blueprint("card_invitations_api", __name__, url_prefix="/api/v1",
                description="Invite a member to update their card (a signed, single-use, expiring link).")
blp.before_request(auth.require_owner)


class InvitationIn(StrictSchema):
    expires_in_hours = ma.fields.Integer(required=True,
                                         validate=validate.Range(min=1, max=invitations.MAX_HOURS))
    channels = ma.fields.List(ma.fields.String(validate=validate.OneOf(["email", "sms"])),
                              load_default=lambda: ["email"], validate=validate.Length(min=1, max=2))
    payment_method_id = ma.fields.Integer(
        allow_none=True, load_default=None, metadata={"description": "Required when the member has several cards"})


class InvitationCardOut(ma.Schema):
    id = ma.fields.Integer()
    brand = ma.fields.String()
    last4 = ma.fields.String()
    exp_month = ma.fields.Integer()
    exp_year = ma.fields.Integer()


class InvitationOut(ma.Schema):
    id = ma.fields.Integer()
    member_id = ma.fields.Integer()
    state = ma.fields.Function(lambda inv: inv.state(), metadata={
        "description": "sent | opened | completed | expired | revoked"})
    channels = ma.fields.List(ma.fields.String())
    payment_method = ma.fields.Nested(InvitationCardOut, allow_none=True)
    new_payment_method_id = ma.fields.Integer(allow_none=True)
    email_status = ma.fields.String(allow_none=True)
    sms_status = ma.fields.String(allow_none=True)
    expires_at = ma.fields.DateTime()
    created_at = ma.fields.DateTime()
    sent_at = ma.fields.DateTime(allow_none=True)
    opened_at = ma.fields.DateTime(allow_none=True)
    completed_at = ma.fields.DateTime(allow_none=True)
    revoked_at = ma.fields.DateTime(allow_none=True)


def _member(member_id: int) -> Member:
    member = db.session.get(Member, member_id)
    if member is None:
        raise MemberNotFound()
    return member


def invite(member: Member, data: dict, created_by_ref: str | None) -> CardInvitation:
    """Create, queue the message after commit, commit. Shared by the API and the admin panel."""
    invitation = invitations.create(db.session, member, created_by_ref=created_by_ref, **data)
    jobs.after_commit(db.session, tasks.send_card_invitation, invitation.id)
    return invitation


@blp.route("/members/<int:member_id>/invitations", methods=["POST"])
@blp.arguments(InvitationIn)
@blp.response(201, InvitationOut)
def create_invitation(data, member_id):
    """Invite a member to add or replace a card (422 ``payment_method_required``, ``no_email``)."""
    key = getattr(g, "api_key", None)
    return invite(_member(member_id), data, f"api_key:{key.id}" if key is not None else None)


@blp.route("/members/<int:member_id>/invitations", methods=["GET"])
@blp.response(200, InvitationOut(many=True))
def list_invitations(member_id):
    """A member's invitations, newest first, each with its state."""
    return invitations.list_for(db.session, _member(member_id))


@blp.route("/invitations/<int:invitation_id>", methods=["GET"])
@blp.response(200, InvitationOut)
def get_invitation(invitation_id):
    return invitations.get(db.session, invitation_id)


@blp.route("/invitations/<int:invitation_id>/revoke", methods=["POST"])
@blp.response(200, InvitationOut)
def revoke_invitation(invitation_id):
    """Revoke a sent or opened invitation: the link stops working."""
    invitation = invitations.revoke(db.session, invitations.get(db.session, invitation_id))
    return invitation
