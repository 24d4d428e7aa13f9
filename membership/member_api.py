"""The signed-in member's own JSON (for headless front ends): ``GET /api/v1/me``, authenticated by the
session cookie that /login sets, not by an owner key."""

from __future__ import annotations

from flask_smorest import Blueprint

from errors import Unauthorized
from extensions import db
from membership import account, auth
from membership.schemas import MeOut

blp = Blueprint("member_api", __name__, url_prefix="/api/v1",
                description="The signed-in member's own data (session cookie).")

NOT_SIGNED_IN = "Sign in first: this endpoint uses the member's session cookie from /login."


@blp.route("/me", methods=["GET"])
@blp.response(200, MeOut)
@blp.doc(security=[{"memberSession": []}])
def me():
    """The signed-in member: levels with their courses and end dates, past-due notices, past access."""
    member = auth.current_member()
    if member is None:
        raise Unauthorized(NOT_SIGNED_IN, code="not_signed_in")
    return account.summary(db.session, member), 200, {"Cache-Control": "private, no-store"}
