"""Blueprint "webhooks": carts post here. Authenticate -> parse -> (batch) store -> process -> commit -> answer.

Answers: 200 ``{"status": "processed" | "duplicate" | "ignored" | "needs_attention", "event_id": <id>}``
for every stored delivery; 401 when the secret or signature is wrong or missing (nothing stored); 400
``unparseable_body`` when the body cannot be read at all; 413 over ``MAX_BODY_BYTES`` (chunked or not); 404
for an unknown integration. Emails and other slow work are queued and run after the commit, never while the
cart waits.
"""

from __future__ import annotations

import json
import time

import marshmallow as ma
from flask import Blueprint, jsonify, request
from sqlalchemy import bindparam, select
from werkzeug.exceptions import LengthRequired, RequestEntityTooLarge

import observability
import sqlutil
from billing import charges
from extensions import db
from fulfillment import batches, cleaning, parsers, services, signatures
from fulfillment.errors import IntegrationNotFound, UnparseableBody
from fulfillment.parsers import keap as keap_parser
from fulfillment.models import EventStatus, Integration, IntegrationKind

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")

# Never stored: anything that authenticates a request.
SECRET_HEADERS = {"stripe-signature", "x-coursegate-signature", "authorization", "proxy-authorization", "cookie"}


def _integration(integration_id: int, kind: str) -> Integration:
    """The integration a delivery is for, read in one statement on the autocommit engine (``sqlutil.Read``): the
    request only reads it (to authenticate), so it needs no transaction, and the batch's leader merges it into its
    own session without reading it again. Returned detached."""
    rows = _INTEGRATION.rows(sqlutil.autocommit_engine(db.engine), id=integration_id)
    if not rows or rows[0][_KIND] != kind:
        raise IntegrationNotFound()
    return sqlutil.detached(Integration, dict(zip(_COLUMNS, rows[0])))


_COLUMNS = [column.key for column in Integration.__table__.columns]
_KIND = _COLUMNS.index("kind")
_INTEGRATION = sqlutil.Read(lambda: select(Integration.__table__).where(
    Integration.__table__.c.id == bindparam("id", None, type_=Integration.__table__.c.id.type)))


def _headers(integration: Integration) -> dict:
    kept = {name: value for name, value in request.headers.items()
            if name.lower() not in SECRET_HEADERS and "secret" not in name.lower()
            and "token" not in name.lower()}
    return cleaning.headers_without_secrets(kept, signatures.secrets_of(integration))


def _fulfil(integration: Integration, event, *, body: str, content_type: str, started: float):
    """Hand the delivery to this process's group-commit receiver (``fulfillment.batches``) and answer with its
    own outcome once its batch has committed."""
    kind = str(integration.kind)
    answer = batches.batcher().fulfil(db.session, services.Delivery(integration, event, body, content_type,
                                                                    _headers(integration)))
    # Counted once stored: /metrics shows deliveries by cart and outcome, and the time to store and process.
    observability.WEBHOOK_DELIVERIES.labels(kind, answer.status).inc()
    observability.FULFILMENT_SECONDS.observe(time.perf_counter() - started)
    if answer.status == EventStatus.FAILED:
        # Stored, but our side failed: a non-2xx makes the cart retry, and the retry replays the event.
        return jsonify(code="processing_failed", message="The delivery was stored but could not be processed; "
                       "it will be retried.", event_id=answer.event_id), 500
    return jsonify(status=answer.status, event_id=answer.event_id)


MAX_BODY_BYTES = 1_000_000  # a real order is a few kilobytes
_TOO_LARGE = f"A delivery is at most {MAX_BODY_BYTES} bytes; nothing was stored."


def _raw_body() -> bytes:
    """The whole body however it is framed. A chunked body has no Content-Length to check up front, and the
    stream under it ends quietly at MAX_CONTENT_LENGTH: so count while reading, and refuse (413) rather than
    ever work on, or acknowledge, a body cut short."""
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise RequestEntityTooLarge(_TOO_LARGE)
    if (request.content_length is None and "chunked" in request.headers.get("Transfer-Encoding", "").lower()
            and "wsgi.input_terminated" not in request.environ):
        raise LengthRequired("This server cannot read a chunked body: send Content-Length.")
    chunks, size = [], 0
    while chunk := request.stream.read(64 * 1024):
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise RequestEntityTooLarge(_TOO_LARGE)
        chunks.append(chunk)
    return b"".join(chunks)


def _json_text(body: bytes) -> str:
    """A JSON body as text to store: UTF-8, or the UTF-16/32 that JSON allows (and json.loads reads)."""
    try:
        return cleaning.text(body.decode(json.detect_encoding(body)))
    except UnicodeDecodeError:
        raise UnparseableBody("The body is not UTF-8 (or UTF-16/32) text.") from None


@bp.route("/thrivecart/<int:integration_id>", methods=["HEAD", "POST"])
@batches.receiver
def thrivecart(integration_id: int):
    """ThriveCart account webhooks: form (bracket keys) or JSON; ``thrivecart_secret`` in the body."""
    started = time.perf_counter()
    integration = _integration(integration_id, IntegrationKind.THRIVECART)
    if request.method == "HEAD":
        return "", 200
    body = _raw_body()
    content_type = request.content_type or ""
    tree, form = parsers.read_thrivecart(body, content_type)
    if not parsers.thrivecart_event_type(tree):
        # ThriveCart checks a URL with a POST that is not an order before it saves it: acknowledge, change nothing.
        return jsonify(status=str(EventStatus.IGNORED), event_id=None)
    signatures.verify_thrivecart(integration, tree.get("thrivecart_secret"))
    event = parsers.thrivecart_event(tree)
    secrets = signatures.secrets_of(integration)
    if form is None:  # JSON
        stored = cleaning.without_secrets(parsers.strip_thrivecart_secret(body, content_type), content_type,
                                          secrets, drop="thrivecart_secret")
    else:  # the form as read above, so it is not read twice
        stored = cleaning.form_without_secrets(body.decode("utf-8"), form, secrets, drop="thrivecart_secret")
    return _fulfil(integration, event, body=stored, content_type=content_type, started=started)


@bp.route("/keap/<int:integration_id>", methods=["POST"])
@batches.receiver
def keap(integration_id: int):
    """A Keap campaign's "Send HTTP Post" step (form, or JSON): ``key`` in the URL query or as a pair."""
    integration = _integration(integration_id, IntegrationKind.KEAP)
    started = time.perf_counter()
    body = _raw_body()
    content_type = request.content_type or ""
    fields = keap_parser.decode(body, content_type)
    signatures.verify_keap(integration, keap_parser.given_key(fields, request.args.get("key")))
    stored = cleaning.without_secrets(keap_parser.strip_key(body, content_type), content_type,
                                      signatures.secrets_of(integration))
    return _fulfil(integration, keap_parser.event(fields), body=stored, content_type=content_type, started=started)


def _receive_signed_json(integration_id: int, kind: str, verify, header: str, parse):
    """Stripe and generic carts: verify the signature over the raw bytes, then parse, store, process."""
    started = time.perf_counter()
    integration = _integration(integration_id, kind)
    body = _raw_body()
    verify(integration, body, request.headers.get(header))
    text = _json_text(body)
    tree = parsers.decode_json(text)
    if kind == IntegrationKind.STRIPE and tree.get("type") in PAYMENT_INTENT_EVENTS:
        return _settle_payment(tree)
    event = parse(tree)
    content_type = request.content_type or ""
    stored = cleaning.without_secrets(text, content_type, signatures.secrets_of(integration))
    return _fulfil(integration, event, body=stored, content_type=content_type, started=started)


# How our own billing's off-session charges ended (billing/charges.py); not cart orders.
PAYMENT_INTENT_EVENTS = ("payment_intent.succeeded", "payment_intent.payment_failed",
                         "payment_intent.requires_action", "payment_intent.processing")


def _settle_payment(tree: dict):
    status = charges.settle_stripe_event(db.session, tree)
    db.session.commit()
    if status == "busy":  # a tick is charging that invoice this moment: Stripe delivers again later
        return jsonify(code="invoice_busy", message="That invoice is being charged right now; deliver again "
                       "later."), 503
    return jsonify(status=status, event_id=None)


@bp.route("/stripe/<int:integration_id>", methods=["POST"])
@batches.receiver
def stripe_webhook(integration_id: int):
    """Stripe: ``Stripe-Signature`` verified over the raw body with the integration's ``whsec_`` secret."""
    return _receive_signed_json(integration_id, IntegrationKind.STRIPE, signatures.verify_stripe,
                                "Stripe-Signature", parsers.stripe_event)


@bp.route("/generic/<int:integration_id>", methods=["POST"])
@batches.receiver
def generic(integration_id: int):
    """Any other cart: our JSON format, signed with ``X-Coursegate-Signature`` (see README)."""
    return _receive_signed_json(integration_id, IntegrationKind.GENERIC, signatures.verify_generic,
                                "X-Coursegate-Signature", parsers.generic_event)


# --- the receivers in the OpenAPI spec (they are not smorest routes: carts post forms and raw bodies) ---

class WebhookAnswer(ma.Schema):
    status = ma.fields.String(metadata={"description": "processed, duplicate, ignored or needs_attention"})
    event_id = ma.fields.Integer(allow_none=True, metadata={"description": "The stored delivery "
                                                                           "(GET /api/v1/events/{id})"})


def document(app, spec) -> None:
    """Add the receivers and the generic event format to the spec."""
    rules = {rule.endpoint: rule for rule in app.url_map.iter_rules()}
    spec.components.schema("GenericWebhookEvent", schema=parsers.GenericEventSchema)
    spec.components.schema("WebhookAnswer", schema=WebhookAnswer)

    def ref(name: str) -> dict:
        return {"$ref": f"#/components/schemas/{name}"}

    error = {"content": {"application/json": {"schema": ref("Error")}}}
    answered = {"description": "Stored (and processed unless a duplicate)",
                "content": {"application/json": {"schema": ref("WebhookAnswer")}}}
    common = {"200": answered, "400": {"description": "unparseable_body: the body cannot be read", **error},
              "401": {"description": "Missing or wrong secret/signature, or no secret configured", **error},
              "404": {"description": "integration_not_found", **error},
              "413": {"description": f"payload_too_large: over {MAX_BODY_BYTES} bytes, however framed", **error}}
    spec.path(rule=rules["webhooks.generic"], operations={"post": {
        "tags": ["Cart webhooks"], "security": [],
        "summary": "Any cart: Coursegate's own signed JSON event format",
        "description": ("Sign the raw body with the integration's secret: header `X-Coursegate-Signature: "
                        "t=<unix seconds>,v1=<hex HMAC-SHA256 of \"<t>.<raw body>\">` (300 s tolerance; "
                        "several v1 values may be sent during a secret rotation). Events: " +
                        ", ".join(f"`{name}`" for name in parsers.GENERIC_EVENTS) + "."),
        "requestBody": {"required": True, "content": {"application/json": {"schema": ref("GenericWebhookEvent")}}},
        "responses": {**common, "422": {"description": "invalid_payload: not the documented format", **error}},
    }})
    spec.path(rule=rules["webhooks.thrivecart"], operations={
        "post": {"tags": ["Cart webhooks"], "security": [],
                 "summary": "ThriveCart account webhooks (form with bracket keys, or JSON)",
                 "description": ("Authenticated by the body field `thrivecart_secret`. A POST without `event` "
                                 "(ThriveCart's URL check) answers 200 and changes nothing."),
                 "requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                                             "application/json": {"schema": {"type": "object"}}}},
                 "responses": common},
        "head": {"tags": ["Cart webhooks"], "security": [],
                 "summary": "ThriveCart's URL check", "responses": {"200": {"description": "The URL exists"}}},
    })
    spec.path(rule=rules["webhooks.keap"], operations={"post": {
        "tags": ["Cart webhooks"], "security": [],
        "summary": "Keap (Infusionsoft) campaign HTTP Post: enroll, revoke, tag or untag",
        "description": ("The integration's key as `?key=` or a `key` pair. Pairs (names in any case): `Email`, "
                        "`contactId`/`Id`, `FirstName`, `LastName`, `action` (enroll, revoke, tag, untag), `level` "
                        "(slugs, comma-separated), `tag`, `days`. See GET /api/v1/integrations/{id}/keap-setup."),
        "parameters": [{"name": "key", "in": "query", "required": False, "schema": {"type": "string"}}],
        "requestBody": {"content": {"application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                                    "application/json": {"schema": {"type": "object"}}}},
        "responses": common,
    }})
    spec.path(rule=rules["webhooks.stripe_webhook"], operations={"post": {
        "tags": ["Cart webhooks"], "security": [],
        "summary": "Stripe webhooks (Stripe-Signature with the whsec_ secret)",
        "requestBody": {"content": {"application/json": {"schema": {"type": "object"}}}},
        "responses": common,
    }})
