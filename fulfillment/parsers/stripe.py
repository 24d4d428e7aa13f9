"""Stripe: a signed event's JSON read into an :class:`OrderEvent`; Checkout line items into :class:`Line`s."""

from __future__ import annotations

from fulfillment.errors import UnparseableBody
from fulfillment.models import ItemType
from fulfillment.parsers.events import Action, Line, OrderEvent, get_path, key_of

# --- events -----------------------------------------------------------------------------------------

def _stripe_id(value) -> str | None:
    """A Stripe reference: the id string, or the id of an expanded object; anything else is no reference."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _stripe_text(value) -> str | None:
    return value if isinstance(value, str) else None


def stripe_event(tree: dict) -> OrderEvent:
    event_type = _stripe_text(tree.get("type")) or ""
    obj = get_path(tree, "data", "object")
    if not event_type or not isinstance(obj, dict):
        raise UnparseableBody("This is not a Stripe event (no type or data.object).")
    ev = OrderEvent(Action.IGNORED, event_type, dedupe_key=key_of("stripe", _stripe_id(tree.get("id")) or
                                                               _stripe_id(obj.get("id"))),
                    test_mode=tree.get("livemode") is False)
    if event_type in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
        details = obj.get("customer_details") if isinstance(obj.get("customer_details"), dict) else {}
        ev.email = _stripe_text(details.get("email")) or _stripe_text(obj.get("customer_email"))
        ev.name = (_stripe_text(details.get("name")) or "").strip()
        ev.customer_ref = _stripe_id(obj.get("customer"))
        ev.order_ref = _stripe_id(obj.get("payment_intent")) or _stripe_id(obj.get("id"))
        ev.subscription_ref = _stripe_id(obj.get("subscription"))
        ev.invoice_ref = _stripe_id(obj.get("invoice"))
        if obj.get("payment_status") not in ("paid", "no_payment_required"):
            ev.note = f"Checkout session not paid yet (payment_status {obj.get('payment_status')!r})."
            return ev
        ev.action = Action.ORDER_COMPLETED
        ev.checkout_session_id = _stripe_id(obj.get("id"))
        if not ev.email:
            ev.problem = "The checkout session has no customer email."
        elif not ev.checkout_session_id:
            ev.problem = "The checkout session has no id."
    elif event_type == "charge.refunded":
        ev.order_ref = _stripe_id(obj.get("payment_intent")) or _stripe_id(obj.get("id"))
        ev.email = _stripe_text(get_path(obj, "billing_details", "email"))
        if obj.get("refunded") is not True:
            ev.note = "Partial refund: access is kept."
            return ev
        ev.action = Action.LINE_REFUNDED  # no lines: the whole order
    elif event_type == "customer.subscription.deleted":
        ev.action = Action.SUBSCRIPTION_CANCELLED  # Stripe sends this when the subscription has ended
        ev.subscription_ref = _stripe_id(obj.get("id"))
    elif event_type in ("invoice.payment_failed", "invoice.paid"):
        ev.subscription_ref = (_stripe_id(obj.get("subscription"))
                               or _stripe_id(get_path(obj, "parent", "subscription_details", "subscription")))
        ev.invoice_ref = _stripe_id(obj.get("id"))
        ev.email = _stripe_text(obj.get("customer_email"))
        if not ev.subscription_ref:
            ev.note = "Invoice without a subscription."
        elif event_type == "invoice.paid" and obj.get("billing_reason") == "subscription_create":
            ev.note = "First invoice of a subscription: the checkout session grants access."
        else:
            ev.action = Action.PAYMENT_FAILED if event_type == "invoice.payment_failed" else Action.PAYMENT_SUCCEEDED
    else:
        ev.note = f"{event_type} does not change access."
    return ev


def stripe_lines(line_items: list[dict], subscription_ref: str | None) -> list[Line]:
    lines = []
    for item in line_items:
        price = item.get("price") or {}
        product = price.get("product")
        if isinstance(product, dict):
            product = product.get("id")
        if not product:
            continue
        lines.append(Line(ItemType.PRODUCT.value, product, price.get("id"), subscription_ref=subscription_ref,
                          name=item.get("description"), alt_product_id=price.get("id")))
    return lines

