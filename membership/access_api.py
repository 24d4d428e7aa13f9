"""``GET /api/v1/access``: the call a site's headless front end makes on every page view, so it is kept to the
floor (see docs/performance.md, "Access check"): the owner key and the answer in one SQL statement on an
autocommit connection, the query string read by the same schema without webargs, the two-field answer written
without a dump schema. The spec documents it with the same schemas (``AccessArgs``, ``AccessOut``) as before.
"""

from __future__ import annotations

from flask import jsonify, request
from flask_smorest import Blueprint
from marshmallow import ValidationError

from extensions import db
from membership import auth, queries
from membership.schemas import AccessArgs, AccessOut

blp = Blueprint("access_api", __name__, url_prefix="/api/v1",
                description="The access check: may this email open this course right now? (owner API key)")

_ARGS = AccessArgs()


@blp.route("/access", methods=["GET"])
@blp.doc(parameters=[{"in": "query", "schema": AccessArgs}])
@blp.alt_response(200, schema=AccessOut, description="OK", success=True)
@blp.alt_response(422, "UNPROCESSABLE_ENTITY")
def access():
    """May this email open this course right now? The call a site's front end makes to gate content."""
    key = auth.bearer_key()
    try:
        args = _ARGS.load(request.args)
    except ValidationError:
        auth.key_from_request()  # as on every owner call, a bad key is a 401 before a bad query is a 422
        raise
    levels = queries.owner_access(db.engine, auth.hash_key(key), args["email"], args["course"])
    if levels is None:
        raise auth.invalid_key()
    return jsonify(allowed=bool(levels), levels=levels)
