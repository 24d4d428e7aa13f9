"""Events: the cart delivery log (filters, the stored payload with secrets removed, replay), an integration's
recent deliveries and its "send a test delivery" button, and the dashboard's event figures."""

from __future__ import annotations

import json
import uuid

from flask import abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import func, select
from sqlalchemy.orm import Session

import timeutil
from admin import deliveries, stats
from admin.pages.blueprint import DASHBOARD_COUNTS, DashboardCount, bp, paginate
from errors import CoursegateError
from extensions import db
from fulfillment import parsers, rules
from fulfillment import services as fulfillment
from fulfillment.models import EventStatus, FulfillmentRule, Integration, IntegrationKind, ItemType, WebhookEvent

ATTENTION = (EventStatus.NEEDS_ATTENTION, EventStatus.FAILED)
RECENT_DELIVERIES = 10


def events_needing_attention(session: Session) -> int:
    return session.scalar(select(func.count(WebhookEvent.id)).where(WebhookEvent.status.in_(ATTENTION))) or 0


DASHBOARD_COUNTS.append(DashboardCount("events needing attention", events_needing_attention,
                                       "admin.events_attention"))


@bp.context_processor
def event_helpers():
    return {"integration_deliveries": _recent_deliveries, "event_status_label": status_label}


def _recent_deliveries(integration: Integration) -> list[WebhookEvent]:
    return list(db.session.scalars(select(WebhookEvent).where(WebhookEvent.integration_id == integration.id)
                                   .order_by(WebhookEvent.id.desc()).limit(RECENT_DELIVERIES)))


def status_label(status: str) -> str:
    return str(status).replace("_", " ")


STATUS_FILTERS = [("attention", "Needs attention or failed"), *((s.value, status_label(s.value)) for s in EventStatus)]


@bp.get("/events")
def events():
    query = select(WebhookEvent).order_by(WebhookEvent.id.desc())
    integration_id = request.args.get("integration_id", type=int)
    if integration_id:
        query = query.where(WebhookEvent.integration_id == integration_id)
    status = request.args.get("status", "")
    if status == "attention":
        query = query.where(WebhookEvent.status.in_(ATTENTION))
    elif status in {s.value for s in EventStatus}:
        query = query.where(WebhookEvent.status == status)
    else:
        status = ""
    email = request.args.get("email", "").strip().lower()[:320]
    if email:
        query = query.where(WebhookEvent.email == email)
    orders_today = request.args.get("orders") == "today"  # the dashboard's "orders today" figure
    if orders_today:
        query = query.where(*stats.orders_today_conditions())
    page = paginate(query)
    integrations = list(db.session.scalars(select(Integration).order_by(Integration.name)))
    names = {integration.id: integration.name for integration in integrations}
    return render_template("admin/events.html", page=page, status=status, email=email,
                           integration_id=integration_id, integrations=integrations, names=names,
                           statuses=STATUS_FILTERS, orders_today=orders_today)


@bp.get("/events/needing-attention")
def events_attention():
    return redirect(url_for("admin.events", status="attention"))


def _event(event_id: int) -> WebhookEvent:
    row = db.session.get(WebhookEvent, event_id)
    if row is None:
        abort(404)
    return row


def pretty_payload(row: WebhookEvent) -> str:
    """The stored body, indented (the cart's secret was removed before it was stored)."""
    try:
        tree = fulfillment.stored_payload(row)
    except CoursegateError:
        return row.body
    return json.dumps(tree, indent=2, ensure_ascii=False, sort_keys=False)


@bp.get("/events/<int:event_id>")
def event(event_id: int):
    row = _event(event_id)
    original = db.session.get(WebhookEvent, row.duplicate_of_id) if row.duplicate_of_id else None
    return render_template("admin/event.html", event=row, payload=pretty_payload(row), original=original,
                           outcome=deliveries.outcome(db.session, row), mapping_link=_mapping_link,
                           replayable=(original or row).status not in (EventStatus.PROCESSED,
                                                                        EventStatus.DUPLICATE))


def _mapping_link(row: WebhookEvent, line) -> str:
    """Where the rule for an unmapped item is made: its product's form, or the integration's upsells page."""
    if line.item_type in (ItemType.UPSELL, ItemType.DOWNSELL):
        return url_for("admin.funnel_mapping", integration_id=row.integration_id)
    return url_for("admin.product_mapping", integration_id=row.integration_id, product_id=line.product_id)


@bp.post("/events/<int:event_id>/replay")
def event_replay(event_id: int):
    """The same service and refusal as ``POST /api/v1/events/<id>/replay``."""
    row = _event(event_id)
    try:
        replayed = fulfillment.replay(db.session, row)
    except CoursegateError as error:
        db.session.rollback()
        flash(error.message, "bad")
        return redirect(url_for("admin.event", event_id=row.id))
    status, message, replayed_id = str(replayed.status), replayed.last_error, replayed.id
    flash(f"Event #{replayed_id} replayed: {status_label(status)}." + (f" {message}" if message else ""),
          "good" if status == EventStatus.PROCESSED else "warn")
    return redirect(url_for("admin.event", event_id=replayed_id))


# --- a test delivery ------------------------------------------------------------------------------------

TEST_BUYER_NAME = "Test Buyer"


def _test_product(session: Session, integration: Integration) -> str:
    """A product the owner configured (so the test exercises their rules), or ThriveCart's first id."""
    product_id = session.scalar(select(FulfillmentRule.product_id)
                                .where(FulfillmentRule.integration_id == integration.id,
                                       FulfillmentRule.item_type == ItemType.PRODUCT)
                                .order_by(FulfillmentRule.id).limit(1))
    return product_id or "1"


def thrivecart_test_order(product_id: str, email: str) -> dict:
    """A ThriveCart test-mode ``order.success`` as ThriveCart posts it (JSON), minus the secret."""
    moment = timeutil.now()
    order_id = f"TEST-{uuid.uuid4().hex[:12]}"
    customer_id = f"test-{email}"
    return {
        "event": "order.success", "mode": "test", "mode_int": "1", "thrivecart_account": "coursegate-test",
        "base_product": product_id, "base_product_name": f"Product {product_id}", "order_id": order_id,
        "invoice_id": order_id, "order_date": moment.strftime("%Y-%m-%d %H:%M:%S"),
        "order_timestamp": str(int(moment.timestamp())), "currency": "USD", "customer_id": customer_id,
        "customer": {"id": customer_id, "name": TEST_BUYER_NAME, "email": email, "first_name": "Test",
                     "last_name": "Buyer"},
        "order": {"id": order_id, "invoice_id": order_id, "processor": "test", "total": "0", "total_str": "0.00",
                  "date": moment.strftime("%Y-%m-%d %H:%M:%S"), "date_iso8601": moment.isoformat(),
                  "date_unix": str(int(moment.timestamp())),
                  "charges": [{"name": f"Product {product_id}", "reference": product_id, "item_type": "product",
                               "item_identifier": f"product_{product_id}", "amount": "0", "type": "single",
                               "quantity": "1"}]},
        "purchases": [f"Product {product_id}"], "purchase_map": [f"product-{product_id}"],
        "purchase_map_flat": f"product-{product_id}",
    }


def generic_test_order(product_id: str, email: str) -> dict:
    order_id = f"TEST-{uuid.uuid4().hex[:12]}"
    return {"event": "order.completed", "id": f"evt-{order_id}", "order_id": order_id, "email": email,
            "name": TEST_BUYER_NAME, "test": True, "items": [{"type": "product", "product_id": product_id}]}


def send_test_delivery(session: Session, integration: Integration, email: str) -> WebhookEvent:
    """Post a realistic test-mode order through the same path as a real delivery (store, then process).

    Test orders grant nothing unless the integration accepts them; the event records what happened."""
    product_id = _test_product(session, integration)
    if integration.kind == IntegrationKind.THRIVECART:
        tree = thrivecart_test_order(product_id, email)
        event = parsers.thrivecart_event(tree)
    elif integration.kind == IntegrationKind.GENERIC:
        tree = generic_test_order(product_id, email)
        event = parsers.generic_event(tree)
    else:
        raise TestDeliveryUnavailable()
    return fulfillment.receive(session, integration, event, body=json.dumps(tree), content_type="application/json",
                               headers={"User-Agent": "Coursegate admin test delivery"})


class TestDeliveryUnavailable(CoursegateError):
    status = 422
    code = "test_delivery_unavailable"
    message = ("Stripe signs its own test events: send one from the Stripe dashboard "
               "(Developers → Webhooks → Send test webhook).")


@bp.post("/integrations/<int:integration_id>/test-delivery")
def integration_test_delivery(integration_id: int):
    integration = rules.get_integration(db.session, integration_id)
    try:
        row = send_test_delivery(db.session, integration, g.owner.email)
    except CoursegateError as error:
        db.session.rollback()
        flash(error.message, "bad")
        return redirect(url_for("admin.integration", integration_id=integration.id))
    status, message, event_id = str(row.status), row.last_error, row.id
    flash(f"Test delivery sent as event #{event_id} for {g.owner.email}: {status_label(status)}."
          + (f" {message}" if message else ""), "good" if status == EventStatus.PROCESSED else "warn")
    return redirect(url_for("admin.integration", integration_id=integration.id) + "#deliveries-heading")
