"""Is this delivery from the cart? Each check works on the raw bytes and compares in constant time.

Every check accepts the integration's current secret and, during a rotation, its previous one until
``previous_secret_expires_at``. An integration without a secret accepts nothing (fail closed).
"""

from __future__ import annotations

import hashlib
import hmac
import time

import timeutil
from fulfillment.errors import WebhookUnauthorized
from fulfillment.models import Integration

TOLERANCE_SECONDS = 300
# A rotation sends two or three v1 values; more is not a cart, and each costs an HMAC per secret.
MAX_SIGNATURES = 8
MAX_HEADER_LENGTH = 2048


def secrets_of(integration: Integration) -> list[str]:
    secrets = [integration.secret] if integration.secret else []
    expires = integration.previous_secret_expires_at
    if integration.previous_secret and (expires is None or expires > timeutil.now()):
        secrets.append(integration.previous_secret)
    return secrets


def _require_secrets(integration: Integration) -> list[str]:
    secrets = secrets_of(integration)
    if not secrets:
        raise WebhookUnauthorized("This integration has no secret configured; deliveries are refused.",
                                  code="no_secret_configured")
    return secrets


def verify_thrivecart(integration: Integration, given: object) -> None:
    """``thrivecart_secret`` from the body must equal the account's secret word."""
    secrets = _require_secrets(integration)
    if not isinstance(given, str) or not given:
        raise WebhookUnauthorized("thrivecart_secret is missing.", code="missing_secret")
    given_bytes = given.encode()
    # Check every candidate (no early exit) so timing does not tell which one was close.
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(given_bytes, secret.encode())
    if not matched:
        raise WebhookUnauthorized("thrivecart_secret does not match.", code="invalid_secret")


def verify_keap(integration: Integration, given: object) -> None:
    """Keap HTTP Post: the ``key`` from the URL query or a posted pair must equal the integration's secret."""
    secrets = _require_secrets(integration)
    if not isinstance(given, str) or not given:
        raise WebhookUnauthorized("The key is missing: post to the URL with ?key=... (see the integration's "
                                  "Keap setup).", code="missing_secret")
    matched = False
    for secret in secrets:
        matched |= hmac.compare_digest(given.encode(), secret.encode())
    if not matched:
        raise WebhookUnauthorized("The key does not match.", code="invalid_secret")


def _signature_header(name: str, header: str | None) -> tuple[str, list[str]]:
    """``t=<unix>,v1=<hex>[,v1=...]`` -> (timestamp, v1 values), refusing what no cart sends before any work:
    non-ASCII, a timestamp of thousands of digits, dozens of signatures. Dated within 300 s either way."""
    if not header:
        raise WebhookUnauthorized(f"{name} header is missing.", code="missing_signature")
    malformed = WebhookUnauthorized(f"{name} must look like t=<unix>,v1=<hex>.", code="invalid_signature")
    if not header.isascii() or len(header) > MAX_HEADER_LENGTH:
        raise malformed
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            signatures.append(value)
    if not timestamp or not timestamp.isdigit() or len(timestamp) > 12 or not signatures:
        raise malformed
    if len(signatures) > MAX_SIGNATURES:
        raise WebhookUnauthorized(f"{name} carries more than {MAX_SIGNATURES} v1 signatures.",
                                  code="invalid_signature")
    if abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
        raise WebhookUnauthorized("The signature's timestamp is outside the 300 s tolerance.",
                                  code="signature_expired")
    return timestamp, signatures


def _matches(secrets: list[str], timestamp: str, payload: bytes, signatures: list[str]) -> bool:
    """HMAC-SHA256 of ``"<t>.<raw body>"`` under any secret equals any v1 (every pair compared: no early exit)."""
    matched = False
    for secret in secrets:
        expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
        for signature in signatures:
            matched |= hmac.compare_digest(expected.encode(), signature.encode())
    return matched


def verify_stripe(integration: Integration, payload: bytes, header: str | None) -> None:
    """``Stripe-Signature`` over the raw body: Stripe's documented scheme (HMAC-SHA256 of ``"<t>.<body>"`` with
    the ``whsec_`` secret, any v1), checked here rather than by the SDK, which accepts timestamps from the
    future and fails on a body or header that is not what Stripe sends."""
    secrets = _require_secrets(integration)
    timestamp, signatures = _signature_header("Stripe-Signature", header)
    if not _matches(secrets, timestamp, payload, signatures):
        raise WebhookUnauthorized("Stripe-Signature does not verify.", code="invalid_signature")


def sign_generic(secret: str, payload: bytes, timestamp: int | None = None) -> str:
    """The header value a generic cart sends: ``t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_generic(integration: Integration, payload: bytes, header: str | None) -> None:
    secrets = _require_secrets(integration)
    timestamp, signatures = _signature_header("X-Coursegate-Signature", header)
    if not _matches(secrets, timestamp, payload, signatures):
        raise WebhookUnauthorized("X-Coursegate-Signature does not verify.", code="invalid_signature")
