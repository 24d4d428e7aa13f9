"""The signed-in member's own JSON (for headless front ends), authenticated by the session cookie that /login
sets, not by an owner key: ``GET /api/v1/me`` and ``POST /api/v1/me/access-token``; and the public keys that
verify those tokens, ``GET /.well-known/jwks.json``."""

from __future__ import annotations

from flask import Blueprint as FlaskBlueprint
from flask import jsonify
from flask_smorest import Blueprint

import timeutil
from errors import Unauthorized
from extensions import db
from membership import access_tokens, account, auth, queries
from membership.models import Member
from membership.schemas import AccessTokenOut, JwksOut, MeOut

blp = Blueprint("member_api", __name__, url_prefix="/api/v1",
                description="The signed-in member's own data (session cookie).")

NOT_SIGNED_IN = "Sign in first: this endpoint uses the member's session cookie from /login."
PRIVATE = {"Cache-Control": "private, no-store"}


def _signed_in() -> Member:
    member = auth.current_member()
    if member is None:
        raise Unauthorized(NOT_SIGNED_IN, code="not_signed_in")
    return member


@blp.route("/me", methods=["GET"])
@blp.response(200, MeOut)
@blp.doc(security=[{"memberSession": []}])
def me():
    """The signed-in member: levels with their courses and end dates, past-due notices, past access."""
    return account.summary(db.session, _signed_in()), 200, PRIVATE


@blp.route("/me/access-token", methods=["POST"])
@blp.response(200, AccessTokenOut)
@blp.doc(security=[{"memberSession": []}])
def access_token():
    """A short-lived signed token listing the member's levels and courses, for a front end to check access
    without a request per page view (verify it with /.well-known/jwks.json).

    Issuing one changes nothing, so any number may be asked for. A revocation shows in the next token: a token
    already issued keeps listing what it listed until it expires (MEMBER_TOKEN_MAX_AGE, 5 minutes by default)."""
    member = _signed_in()
    moment = timeutil.now()
    issued = access_tokens.issue(member, queries.member_access(db.session, member.id, moment), moment)
    return {"token": issued.token, "expires_at": issued.expires_at, "expires_in": issued.expires_in}, 200, PRIVATE


# --- the published keys (not under /api/v1: where JWT libraries look for them) ------------------------------

keys_bp = FlaskBlueprint("member_token_keys", __name__)


@keys_bp.get("/.well-known/jwks.json")
def jwks():
    response = jsonify(access_tokens.jwks())
    # Verifiers may cache it a little; a new key is published (as a fallback) before it signs, see README.
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def document(app, spec) -> None:
    """Add the key set to the spec (a plain route: smorest documents only /api/v1)."""
    rules = {rule.endpoint: rule for rule in app.url_map.iter_rules()}
    spec.components.schema("Jwks", schema=JwksOut)
    spec.path(rule=rules["member_token_keys.jwks"], operations={"get": {
        "tags": ["member_api"], "security": [],
        "summary": "The public keys (JWKS) that verify member access tokens",
        "responses": {"200": {"description": "OK", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Jwks"}}}}},
    }})
