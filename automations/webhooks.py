"""Outgoing webhooks, the CRM link: every delivery is a durable row, signed, retried for up to three days.

The signature is the scheme our generic cart webhook accepts::

    X-Coursegate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>

Deliveries are sent by a job after the triggering transaction commits, never inside it, so a slow or
failing endpoint never slows fulfilment. A sweep re-sends whatever is due.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import logging
import secrets
import time
from datetime import timedelta
from urllib.parse import urlsplit

import requests
from flask import current_app
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

import jobs
import timeutil
from automations.errors import DeliveryNotFound, EndpointNotFound, InvalidRule
from automations.models import (
    ENDPOINT_URL_PATTERN,
    TRIGGERS,
    AutomationRule,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from extensions import db
from membership import tags as member_tags

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Coursegate-Signature"
RETRY_WINDOW = timedelta(days=3)
FIRST_RETRY_SECONDS = 30
MAX_RETRY_SECONDS = 6 * 3600
CLAIM_SECONDS = 120  # a sender holds a delivery this long; a crashed sender's claim simply runs out
TIMEOUT = (5, 15)  # connect, read
ENDPOINT_FIELDS = ("url", "description", "events", "enabled")


# --- signing ---------------------------------------------------------------------------------------

def sign(secret: str, body: bytes, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify(secret: str, header: str | None, body: bytes, *, tolerance: int = 300, now: int | None = None) -> bool:
    """What a receiver does: any ``v1`` may match; the timestamp must be within ``tolerance`` seconds."""
    if not header:
        return False
    parts = [p.split("=", 1) for p in header.split(",") if "=" in p]
    stamps = [v for k, v in parts if k.strip() == "t"]
    signatures = [v for k, v in parts if k.strip() == "v1"]
    if len(stamps) != 1 or not stamps[0].isdigit() or not signatures:
        return False
    timestamp = int(stamps[0])
    current = int(time.time()) if now is None else now
    if abs(current - timestamp) > tolerance:
        return False
    expected = sign(secret, body, timestamp).split("v1=", 1)[1]
    return any(hmac.compare_digest(expected, s.strip()) for s in signatures)


def backoff(attempt: int) -> timedelta:
    """Wait after failed attempt ``attempt`` (1-based): 30 s, 1 min, 2 min, ... capped at six hours."""
    return timedelta(seconds=min(FIRST_RETRY_SECONDS * 2 ** (attempt - 1), MAX_RETRY_SECONDS))


# --- endpoints -------------------------------------------------------------------------------------

def validate_url(url: str) -> str:
    try:
        hostname = urlsplit(url.strip()).hostname
    except ValueError:  # e.g. an unclosed "[" of an IPv6 address
        hostname = None
    if not re.match(ENDPOINT_URL_PATTERN, url.strip()) or not hostname:
        raise InvalidRule("The endpoint URL must be an absolute http:// or https:// address.",
                          code="invalid_webhook_url", errors={"url": ["Use an absolute http(s) URL."]})
    return url.strip()


def validate_events(events: list[str]) -> list[str]:
    if events == ["*"]:
        return events
    unknown = [e for e in events if e not in TRIGGERS]
    if unknown or not events:
        raise InvalidRule("Unknown webhook events.", code="invalid_webhook_events",
                          errors={"events": [f"Use ['*'] or some of: {', '.join(TRIGGERS)}."]})
    return sorted(set(events), key=TRIGGERS.index)


def create_endpoint(session: Session, data: dict) -> WebhookEndpoint:
    endpoint = WebhookEndpoint(url=validate_url(data["url"]), description=data.get("description") or "",
                               secret=data.get("secret") or "cgwhsec_" + secrets.token_urlsafe(32),
                               events=validate_events(data.get("events") or ["*"]),
                               enabled=data.get("enabled", True))
    session.add(endpoint)
    session.flush()
    return endpoint


def update_endpoint(session: Session, endpoint: WebhookEndpoint, data: dict) -> WebhookEndpoint:
    if "url" in data:
        endpoint.url = validate_url(data["url"])
    if "events" in data:
        endpoint.events = validate_events(data["events"])
    for field in ("description", "enabled"):
        if field in data:
            setattr(endpoint, field, data[field])
    if data.get("secret"):
        endpoint.secret = data["secret"]
    session.flush()
    return endpoint


def delete_endpoint(session: Session, endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint with its deliveries; rules that send to it fail their runs until edited.

    Explicit deletes rather than relying on ON DELETE CASCADE, which SQLite only honours when asked."""
    deliveries = select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint.id)
    session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(deliveries)))
    session.execute(update(WebhookDelivery).where(WebhookDelivery.redelivery_of.in_(deliveries))
                    .values(redelivery_of=None))
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
    session.delete(endpoint)
    session.flush()


def get_endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise EndpointNotFound()
    return endpoint


def get_delivery(session: Session, endpoint: WebhookEndpoint, delivery_id: int) -> WebhookDelivery:
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.endpoint_id != endpoint.id:
        raise DeliveryNotFound()
    return delivery


# --- queueing --------------------------------------------------------------------------------------

def event_payload(session: Session, event, *, rule: AutomationRule | None = None) -> dict:
    """The JSON a CRM receives. ``id`` is stable per event, so a receiver can drop redeliveries."""
    row, member = event.row, event.member
    payload = {
        "id": f"evt_{row.id}",
        "type": row.trigger,
        "created_at": row.created_at.isoformat(),
        "data": {
            "member": {"id": member.id, "email": member.email, "name": member.name,
                       "external_source": member.external_source,
                       "tags": [t.tag.name for t in member_tags.member_tags(session, member.id)]},
            "level": {"id": event.level.id, "slug": event.level.slug, "name": event.level.name}
            if event.level else None,
            "product_id": row.product_id,
            "integration_id": row.integration_id,
            "tag": row.tag,
            "context": row.context or {},
        },
    }
    if rule is not None:
        payload["rule"] = {"id": rule.id, "name": rule.name}
    return payload


def encode(payload: dict) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def create_delivery(session: Session, endpoint: WebhookEndpoint, event_type: str, payload: dict | str, *,
                    event_id: int | None = None, redelivery_of: int | None = None) -> WebhookDelivery:
    body = payload if isinstance(payload, str) else encode(payload)
    delivery = WebhookDelivery(endpoint_id=endpoint.id, event_type=event_type, event_id=event_id, body=body,
                               status=DeliveryStatus.PENDING, next_attempt_at=timeutil.now(),
                               redelivery_of=redelivery_of)
    session.add(delivery)
    session.flush()
    jobs.after_commit(session, "automations.deliver_webhook", delivery.id)
    return delivery


def enqueue_for_event(session: Session, event) -> list[WebhookDelivery]:
    """One delivery per enabled endpoint subscribed to the event's trigger."""
    endpoints = [e for e in session.scalars(select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True))
                                            .order_by(WebhookEndpoint.id))
                 if e.events == ["*"] or event.trigger in e.events]
    if not endpoints:
        return []
    body = encode(event_payload(session, event))
    return [create_delivery(session, endpoint, event.trigger, body, event_id=event.row.id) for endpoint in endpoints]


def redeliver(session: Session, delivery: WebhookDelivery) -> WebhookDelivery:
    """Send the same body again as a new delivery (its own attempts); the payload ``id`` stays the same."""
    return create_delivery(session, delivery.endpoint, delivery.event_type, delivery.body,
                           event_id=delivery.event_id, redelivery_of=delivery.id)


# --- sending (jobs) --------------------------------------------------------------------------------

def deliver(delivery_id: int) -> str | None:
    """Send one due delivery and record the attempt. Commits (it is a job). Returns the new status."""
    session = db.session
    moment = timeutil.now()
    delivery = session.get(WebhookDelivery, delivery_id, with_for_update={"skip_locked": True})
    if (delivery is None or delivery.status != DeliveryStatus.PENDING
            or (delivery.next_attempt_at is not None and delivery.next_attempt_at > moment)):
        session.rollback()
        return None
    endpoint = delivery.endpoint
    if endpoint is None:  # pragma: no cover - its endpoint was deleted under it
        delivery.status = DeliveryStatus.FAILED
        delivery.next_attempt_at = None
        delivery.last_error = "endpoint deleted"
        session.commit()
        return DeliveryStatus.FAILED
    url, secret, body, event_type = endpoint.url, endpoint.secret, delivery.body.encode(), delivery.event_type
    attempt_number = delivery.attempt_count + 1
    # Claim it, then let go of the row while the HTTP call runs.
    delivery.attempt_count = attempt_number
    delivery.next_attempt_at = moment + timedelta(seconds=CLAIM_SECONDS)
    session.commit()

    status_code: int | None = None
    error: str | None = None
    started = time.monotonic()
    if not endpoint.enabled:
        error = "endpoint disabled"
    else:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"Coursegate-Webhooks/1 (+{current_app.config['SITE_URL']})",
            "X-Coursegate-Event": event_type,
            "X-Coursegate-Delivery": str(delivery_id),
            SIGNATURE_HEADER: sign(secret, body, int(timeutil.now().timestamp())),
        }
        try:
            response = requests.post(url, data=body, headers=headers, timeout=TIMEOUT, allow_redirects=False)
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"HTTP {status_code}: {response.text[:200]}"
        except requests.RequestException as exc:
            error = f"{type(exc).__name__}: {exc}"[:1000]
    duration_ms = int((time.monotonic() - started) * 1000)

    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:  # pragma: no cover - deleted with its endpoint meanwhile
        session.rollback()
        return None
    finished = timeutil.now()
    session.add(WebhookAttempt(delivery_id=delivery.id, attempted_at=finished, status_code=status_code,
                               error=error, duration_ms=duration_ms))
    delivery.last_status_code = status_code
    delivery.last_error = error
    if error is None:
        delivery.status = DeliveryStatus.DELIVERED
        delivery.delivered_at = finished
        delivery.next_attempt_at = None
    else:
        retry_at = finished + backoff(attempt_number)
        if not endpoint.enabled or retry_at > delivery.created_at + RETRY_WINDOW:
            delivery.status = DeliveryStatus.FAILED
            delivery.next_attempt_at = None
        else:
            delivery.next_attempt_at = retry_at
        logger.warning("webhook delivery %s attempt %s failed: %s", delivery.id, attempt_number,
                       status_code or "no response")
    status = delivery.status
    session.commit()
    return status


def sweep_due(limit: int = 500) -> int:
    """Send every pending delivery whose next attempt is due. Returns how many were tried."""
    moment = timeutil.now()
    ids = db.session.scalars(
        select(WebhookDelivery.id)
        .where(WebhookDelivery.status == DeliveryStatus.PENDING, WebhookDelivery.next_attempt_at <= moment)
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit)
    ).all()
    db.session.rollback()
    for delivery_id in ids:
        deliver(delivery_id)
    return len(ids)
