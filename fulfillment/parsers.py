"""Cart payloads -> one normalised :class:`OrderEvent`.

Each cart has two steps: ``decode_*`` turns the raw body into a tree (400 ``unparseable_body`` when it
cannot), ``*_event`` reads the tree. ``*_event`` never raises for odd content: what it cannot use becomes
an ``OrderEvent`` with a ``problem`` (stored as ``needs_attention``), so a cart is never refused for a
payload we merely do not understand.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import parse_qsl

import marshmallow as ma
from marshmallow import validate

from fulfillment import cleaning
from fulfillment.errors import InvalidPayload, UnparseableBody
from fulfillment.models import ItemType
from schemas_common import ExternalId


class Action:
    ORDER_COMPLETED = "order_completed"
    LINE_REFUNDED = "line_refunded"
    SUBSCRIPTION_CANCELLED = "subscription_cancelled"
    PAYMENT_FAILED = "payment_failed"
    PAYMENT_SUCCEEDED = "payment_succeeded"
    SUBSCRIPTION_PAUSED = "subscription_paused"
    SUBSCRIPTION_RESUMED = "subscription_resumed"
    IGNORED = "ignored"
    CHECK = "check"  # ThriveCart's URL check: a POST without an event
    KEAP_POST = "keap_post"  # a Keap campaign's HTTP Post (fulfillment/keap_post.py)


ITEM_TYPES = [t.value for t in ItemType]


@dataclass
class Line:
    """One bought item: what a rule matches, and the ``line_ref`` a grant remembers (``bump-12``)."""

    item_type: str
    product_id: str
    pricing_option_id: str | None = None
    line_ref: str = ""
    subscription_ref: str | None = None
    name: str | None = None
    # Stripe: a rule may name the price instead of the product.
    alt_product_id: str | None = None

    def __post_init__(self):
        if not self.line_ref:
            self.line_ref = f"{self.item_type}-{self.product_id}"


@dataclass
class OrderEvent:
    action: str
    event_type: str
    dedupe_key: str | None = None
    test_mode: bool = False
    email: str | None = None
    name: str = ""
    order_ref: str | None = None
    invoice_ref: str | None = None
    subscription_ref: str | None = None
    # The cart's own id for the buyer: recognises a returning buyer who typed a new email.
    customer_ref: str | None = None
    lines: list[Line] = field(default_factory=list)
    # Cancellations: when the paid period ends (None: unknown).
    effective_at: datetime | None = None
    # Stripe Checkout: the session whose line items must be fetched before fulfilment.
    checkout_session_id: str | None = None
    # Why this event is ignored or cannot be used as it stands.
    note: str | None = None
    problem: str | None = None
    # Keap HTTP Post: what the owner's pairs ask for (a fulfillment.keap_post.KeapPost).
    keap: object | None = None


def _key(*parts: object) -> str:
    key = ":".join("" if p is None else str(p) for p in parts)
    if len(key) > 300:
        key = key[:200] + ":" + hashlib.sha256(key.encode()).hexdigest()
    return key


# No cart nests deeper than a few levels; PHP itself stops reading a form at 64 (max_input_nesting_level).
MAX_DEPTH = 64


def decode_json(body: bytes | str) -> dict:
    try:
        tree = json.loads(body)
    except ValueError:
        raise UnparseableBody("The body is not valid JSON.") from None
    except RecursionError:
        raise UnparseableBody(f"The JSON body nests deeper than {MAX_DEPTH} levels.") from None
    if not isinstance(tree, dict):
        raise UnparseableBody("The JSON body must be an object.")
    if _depth(tree) > MAX_DEPTH:
        raise UnparseableBody(f"The JSON body nests deeper than {MAX_DEPTH} levels.")
    return cleaning.tree(tree)


def _depth(tree) -> int:
    deepest, pending = 0, [(tree, 1)]
    while pending:
        node, depth = pending.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        pending.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


# --- ThriveCart -------------------------------------------------------------------------------------

def decode_thrivecart(body: bytes, content_type: str) -> dict:
    """Form (PHP bracket keys) or JSON -> the same tree; every scalar a string, ``"null"`` -> None."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise UnparseableBody("The body is not UTF-8 text.") from None
    stripped = text.strip()
    if not stripped:
        return {}
    if "json" in content_type.lower() or stripped.startswith("{"):
        tree = decode_json(stripped)
    else:
        tree = _php_form_tree(text)
    if not isinstance(tree, dict):  # "0=1": PHP's form reading makes a list of it, which is no delivery
        raise UnparseableBody("The form must be name=value pairs with names, not a list.")
    return cleaning.tree(_normalise(tree))


_BRACKETS = re.compile(r"\[([^\[\]]*)\]")


def _php_form_tree(text: str) -> dict:
    """``order[charges][0][id]=1&purchase_map[]=product-1`` -> nested dicts and lists, as PHP reads it."""
    try:
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=False, max_num_fields=5000)
    except ValueError:
        raise UnparseableBody("The form body could not be parsed.") from None
    tree: dict = {}
    for raw_key, value in pairs:
        head, _, rest = raw_key.partition("[")
        path = [head] + (_BRACKETS.findall("[" + rest) if rest else [])
        if len(path) > MAX_DEPTH:
            raise UnparseableBody(f"The form nests deeper than {MAX_DEPTH} levels.")
        node = tree
        for i, part in enumerate(path):
            last = i == len(path) - 1
            if part == "":  # "a[]": the next numeric index
                part = str(sum(1 for k in node if _is_index(k)))
            if last:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
    return _lists(tree)


def _is_index(key: str) -> bool:
    # ASCII digits only ("²".isdigit() is true) and short enough to be a list position, not a 5000-digit number.
    return key.isascii() and key.isdigit() and len(key) <= 9


def _lists(node):
    if isinstance(node, dict):
        converted = {k: _lists(v) for k, v in node.items()}
        if converted and all(_is_index(k) for k in converted):
            return [converted[k] for k in sorted(converted, key=int)]
        return converted
    return node


def _normalise(node):
    if isinstance(node, dict):
        return {str(k): _normalise(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_normalise(v) for v in node]
    if node is None or node == "null":
        return None
    if isinstance(node, bool):
        return "true" if node else "false"
    return str(node)


def _get(tree, *path):
    node = tree
    for part in path:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return None
    return node


def _text(value) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    value = html.unescape(str(value)).strip()
    return value or None


TC_ACTIONS = {
    "order.success": Action.ORDER_COMPLETED,
    "order.refund": Action.LINE_REFUNDED,
    "order.subscription_payment": Action.PAYMENT_SUCCEEDED,
    "order.subscription_cancelled": Action.SUBSCRIPTION_CANCELLED,
    "order.subscription_paused": Action.SUBSCRIPTION_PAUSED,
    "order.subscription_resumed": Action.SUBSCRIPTION_RESUMED,
    "order.rebill_failed": Action.PAYMENT_FAILED,
    # The Event Subscription API's underscored names.
    "order_created": Action.ORDER_COMPLETED,
    **{f"order_payment_{t}": Action.ORDER_COMPLETED for t in ITEM_TYPES},
    **{f"order_refund_{t}": Action.LINE_REFUNDED for t in ITEM_TYPES},
    "order_rebill": Action.PAYMENT_SUCCEEDED,
    "order_rebill_failed": Action.PAYMENT_FAILED,
    "order_rebill_cancelled": Action.SUBSCRIPTION_CANCELLED,
    "subscription_paused": Action.SUBSCRIPTION_PAUSED,
    "subscription_resumed": Action.SUBSCRIPTION_RESUMED,
}
# Rebills are deduplicated on their invoice id ("000000141-6"), whatever else the delivery carries.
TC_REBILLS = {"order.subscription_payment", "order_rebill"}


def thrivecart_event_type(tree: dict) -> str | None:
    return _text(tree.get("event"))


def _tc_line_ref(tree: dict, event: str) -> str | None:
    for section in ("refund", "subscription"):
        kind, ident = _text(_get(tree, section, "type")), _text(_get(tree, section, "id"))
        if kind and ident:
            return f"{kind}-{ident}"
    purchases = _purchase_map(tree)
    return ",".join(sorted(purchases)) if purchases else None


def thrivecart_dedupe_key(tree: dict) -> str:
    event = thrivecart_event_type(tree)
    order = _text(tree.get("order_id")) or _text(_get(tree, "order", "id"))
    invoice = _text(tree.get("invoice_id"))
    if event in TC_REBILLS and invoice:
        return _key(event, order, invoice, _tc_line_ref(tree, event or ""))
    if _text(tree.get("webhook_id")):
        return _key("webhook", _text(tree.get("webhook_id")))
    if _text(tree.get("event_id")):
        return _key(event, "event", _text(tree.get("event_id")))
    if TC_ACTIONS.get(event or "") == Action.ORDER_COMPLETED:
        return _key(event, order, invoice, _tc_line_ref(tree, event or ""))
    # A subscription can be paused, resumed or fail a payment more than once: the event's own date tells a new
    # event from a retry of the same one.
    return _key(event, order, invoice, _tc_line_ref(tree, event or ""),
                _text(tree.get("date_unix")) or _text(tree.get("date")))


def _purchase_map(tree: dict) -> list[str]:
    raw = tree.get("purchase_map")
    if isinstance(raw, dict):
        raw = list(raw.values())
    if isinstance(raw, str):
        raw = raw.split(",")
    if not raw:
        flat = _text(tree.get("purchase_map_flat"))
        raw = flat.split(",") if flat else []
    return [entry.strip() for entry in raw if isinstance(entry, str) and entry.strip()]


def _split_ref(ref: str) -> tuple[str, str] | None:
    kind, sep, ident = ref.partition("-")
    if not sep or kind not in ITEM_TYPES or not ident:
        return None
    return kind, ident


def _charges(tree: dict) -> list[dict]:
    charges = _get(tree, "order", "charges")
    if isinstance(charges, dict):
        charges = list(charges.values())
    return [c for c in charges or [] if isinstance(c, dict)]


def _pricing_option(tree: dict, charges: list[dict], kind: str, ident: str) -> tuple[str | None, str | None]:
    """The pricing option (``payment_plan_id``) and name of one bought item, from ``order.charges``."""
    typed = [c for c in charges if _text(c.get("reference")) == ident and _text(c.get("item_type")) == kind]
    # Older payloads have no item_type: a charge with the reference is the product's.
    untyped = [c for c in charges if _text(c.get("reference")) == ident and not _text(c.get("item_type"))]
    chosen = typed or (untyped if kind == ItemType.PRODUCT else [])
    for charge in chosen:
        plan = _text(charge.get("payment_plan_id"))
        if plan:
            return plan, _text(charge.get("name"))
    if kind == ItemType.PRODUCT and _text(tree.get("base_product")) == ident:
        return _text(tree.get("base_payment_plan")), _text(tree.get("base_product_name"))
    return None, (_text(chosen[0].get("name")) if chosen else None)


def _tc_name(tree: dict) -> str:
    customer = tree.get("customer") if isinstance(tree.get("customer"), dict) else {}
    name = _text(customer.get("name"))
    if name:
        return name
    first = _text(customer.get("first_name")) or _text(customer.get("firstname")) or ""
    last = _text(customer.get("last_name")) or _text(customer.get("lastname")) or ""
    return f"{first} {last}".strip()


def _timestamp(unix, iso) -> datetime | None:
    unix, iso = _text(unix), _text(iso)
    if unix and unix.isascii() and unix.isdigit() and len(unix) <= 11:
        return _in_range(datetime.fromtimestamp(int(unix), UTC))
    for value in (iso, unix):
        if value:
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return _in_range(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))
    return None


EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)


def _storable_date(moment: datetime) -> None:
    if _in_range(moment) is None:
        raise ma.ValidationError("Out of range: give a date from 1970 to 9998.")


def _in_range(moment: datetime) -> datetime | None:
    """A cart's date the database can store (year 1 at +14:00 is year 0 in UTC), else None (unknown)."""
    try:
        return moment if EARLIEST <= moment.astimezone(UTC) < LATEST else None
    except OverflowError:
        return None


def thrivecart_event(tree: dict) -> OrderEvent:
    event_type = thrivecart_event_type(tree)
    if not event_type:
        return OrderEvent(Action.CHECK, "")
    action = TC_ACTIONS.get(event_type, Action.IGNORED)
    mode_int, mode = _text(tree.get("mode_int")), _text(tree.get("mode"))
    ev = OrderEvent(
        action=action,
        event_type=event_type,
        dedupe_key=thrivecart_dedupe_key(tree),
        test_mode=mode_int == "1" or mode == "test",
        email=_text(_get(tree, "customer", "email")),
        name=_tc_name(tree),
        customer_ref=_text(tree.get("customer_id")) or _text(_get(tree, "customer", "id")),
        order_ref=_text(tree.get("order_id")) or _text(_get(tree, "order", "id")),
        invoice_ref=_text(tree.get("invoice_id")),
        subscription_ref=_text(tree.get("subscription_id")),
    )
    if action == Action.IGNORED:
        ev.note = f"{event_type} does not change access."
        return ev
    if action == Action.ORDER_COMPLETED:
        charges = _charges(tree)
        subscription_ids = tree.get("subscription_ids") if isinstance(tree.get("subscription_ids"), dict) else {}
        refs = _purchase_map(tree)
        if not refs and _text(tree.get("base_product")):
            refs = [f"product-{_text(tree.get('base_product'))}"]
        for ref in dict.fromkeys(refs):  # keep order, drop repeats
            split = _split_ref(ref)
            if split is None:
                continue
            kind, ident = split
            plan, name = _pricing_option(tree, charges, kind, ident)
            ev.lines.append(Line(kind, ident, plan, subscription_ref=_text(subscription_ids.get(ref)), name=name))
        if not ev.lines:
            ev.problem = "The order names no item (no purchase_map and no base_product)."
        elif not ev.email:
            ev.problem = "The order has no customer[email]."
        return ev
    # Refunds and subscription events name one line.
    section = "refund" if action == Action.LINE_REFUNDED else "subscription"
    kind, ident = _text(_get(tree, section, "type")), _text(_get(tree, section, "id"))
    if not (kind and ident) and event_type.startswith("order_refund_"):
        kind = event_type.removeprefix("order_refund_")
        ident = _text(_get(tree, "refund", "product_id")) or _text(tree.get("product_id"))
    if not (kind and ident) and section == "subscription":
        kind, ident = ItemType.PRODUCT.value, _text(tree.get("base_product"))
    if kind in ITEM_TYPES and ident:
        ev.lines.append(Line(kind, ident, _text(tree.get("base_payment_plan")), subscription_ref=ev.subscription_ref))
    if action == Action.SUBSCRIPTION_CANCELLED:
        ev.effective_at = _timestamp(_get(tree, "subscription", "billing_period_end"),
                                     _get(tree, "subscription", "billing_period_end_iso8601")) \
            or _timestamp(tree.get("billing_period_end"), tree.get("billing_period_end_iso8601"))
    if not ev.order_ref and not ev.subscription_ref:
        ev.problem = "The event names no order_id and no subscription_id."
    elif action == Action.LINE_REFUNDED and not ev.lines:
        ev.problem = "The refund does not say which item was refunded (refund[type], refund[id])."
    return ev


_FORM_SECRET = re.compile(r"(?:^|&)thrivecart_secret=[^&]*")


def strip_thrivecart_secret(body: bytes, content_type: str) -> str:
    """The body as received, minus ``thrivecart_secret``."""
    text = body.decode("utf-8")
    stripped = text.strip()
    if "json" in content_type.lower() or stripped.startswith("{"):
        data = json.loads(stripped)
        data.pop("thrivecart_secret", None)
        return json.dumps(data)
    return _FORM_SECRET.sub("", text).lstrip("&")


# --- Stripe -----------------------------------------------------------------------------------------

def _stripe_id(value) -> str | None:
    """A Stripe reference: the id string, or the id of an expanded object; anything else is no reference."""
    if isinstance(value, dict):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _stripe_text(value) -> str | None:
    return value if isinstance(value, str) else None


def stripe_event(tree: dict) -> OrderEvent:
    event_type = _stripe_text(tree.get("type")) or ""
    obj = _get(tree, "data", "object")
    if not event_type or not isinstance(obj, dict):
        raise UnparseableBody("This is not a Stripe event (no type or data.object).")
    ev = OrderEvent(Action.IGNORED, event_type, dedupe_key=_key("stripe", _stripe_id(tree.get("id")) or
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
        ev.email = _stripe_text(_get(obj, "billing_details", "email"))
        if obj.get("refunded") is not True:
            ev.note = "Partial refund: access is kept."
            return ev
        ev.action = Action.LINE_REFUNDED  # no lines: the whole order
    elif event_type == "customer.subscription.deleted":
        ev.action = Action.SUBSCRIPTION_CANCELLED  # Stripe sends this when the subscription has ended
        ev.subscription_ref = _stripe_id(obj.get("id"))
    elif event_type in ("invoice.payment_failed", "invoice.paid"):
        ev.subscription_ref = (_stripe_id(obj.get("subscription"))
                               or _stripe_id(_get(obj, "parent", "subscription_details", "subscription")))
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


# --- Generic (our own documented format) ------------------------------------------------------------

GENERIC_EVENTS = {
    "order.completed": Action.ORDER_COMPLETED,
    "line.refunded": Action.LINE_REFUNDED,
    "subscription.cancelled": Action.SUBSCRIPTION_CANCELLED,
    "payment.failed": Action.PAYMENT_FAILED,
    "payment.succeeded": Action.PAYMENT_SUCCEEDED,
    "subscription.paused": Action.SUBSCRIPTION_PAUSED,
    "subscription.resumed": Action.SUBSCRIPTION_RESUMED,
}


class GenericItem(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE

    type = ma.fields.String(load_default="product", validate=validate.OneOf(ITEM_TYPES),
                            metadata={"description": "product, bump, upsell or downsell"})
    product_id = ExternalId(required=True, validate=validate.Length(max=100),
                            metadata={"description": "Your cart's product id (what fulfillment rules match)"})
    pricing_option_id = ExternalId(allow_none=True, load_default=None, validate=validate.Length(max=100),
                                   metadata={"description": "Pricing option / plan id, if the cart has them"})
    line_id = ExternalId(allow_none=True, load_default=None, validate=validate.Length(max=100),
                         metadata={"description": "Identifies the line within the order for refunds; "
                                                  "default `<type>-<product_id>`"})
    subscription_id = ExternalId(allow_none=True, load_default=None, validate=validate.Length(max=100),
                                 metadata={"description": "The subscription this line renews under, if any"})
    name = ma.fields.String(allow_none=True, load_default=None, validate=validate.Length(max=300))


class GenericEventSchema(ma.Schema):
    """The generic cart webhook body. Sign it: ``X-Coursegate-Signature: t=<unix>,v1=<hex>`` where the hex is
    HMAC-SHA256 of ``"<t>.<raw body>"`` keyed with the integration's secret."""

    class Meta:
        unknown = ma.EXCLUDE

    event = ma.fields.String(required=True, validate=validate.OneOf(list(GENERIC_EVENTS)))
    id = ExternalId(load_default=None, validate=validate.Length(max=200),
                    metadata={"description": "Your unique id for this event: redeliveries with the same id are "
                                             "answered `duplicate`. Without it the key is built from event, order, "
                                             "invoice and line."})
    test = ma.fields.Boolean(load_default=False, metadata={"description": "A test order: granted only when the "
                                                                          "integration accepts test orders"})
    order_id = ExternalId(load_default=None, validate=validate.Length(max=100))
    email = ma.fields.String(load_default=None, validate=validate.Length(max=320))
    name = ma.fields.String(load_default="", validate=validate.Length(max=200))
    customer_id = ExternalId(load_default=None, validate=validate.Length(max=100),
                             metadata={"description": "Your cart's id for the buyer: a returning buyer who uses a "
                                                      "new email keeps one account"})
    items = ma.fields.List(ma.fields.Nested(GenericItem), load_default=list,
                           metadata={"description": "order.completed: every item bought"})
    item = ma.fields.Nested(GenericItem, load_default=None, allow_none=True,
                            metadata={"description": "line.refunded: the refunded line (omit to refund the "
                                                     "whole order); subscription events: the line, if no "
                                                     "subscription_id"})
    subscription_id = ExternalId(load_default=None, validate=validate.Length(max=100))
    invoice_id = ExternalId(load_default=None, validate=validate.Length(max=100),
                            metadata={"description": "payment.*: the invoice, part of the dedupe key"})
    period_end = ma.fields.AwareDateTime(load_default=None, allow_none=True,
                                         validate=_storable_date,
                                         metadata={"description": "subscription.cancelled: end of the paid period "
                                                                  "(1970 to 9998)"})

    @ma.validates_schema
    def _per_event(self, data, **kwargs):
        event = data.get("event")
        if event == "order.completed":
            errors = {}
            if not data.get("order_id"):
                errors["order_id"] = ["Required for order.completed."]
            if not data.get("email"):
                errors["email"] = ["Required for order.completed."]
            if not data.get("items"):
                errors["items"] = ["order.completed needs at least one item."]
            if errors:
                raise ma.ValidationError(errors)
        elif event == "line.refunded" and not data.get("order_id"):
            raise ma.ValidationError({"order_id": ["Required for line.refunded."]})
        elif event in GENERIC_EVENTS and event not in ("order.completed", "line.refunded"):
            if not data.get("subscription_id") and not (data.get("order_id") and data.get("item")):
                raise ma.ValidationError({"subscription_id": ["Give subscription_id, or order_id with item."]})
            if event.startswith("payment.") and not data.get("invoice_id") and not data.get("id"):
                # Without either, next month's payment would look like a redelivery of this one.
                raise ma.ValidationError({"invoice_id": ["Give invoice_id (or a unique id) for payment events."]})
            if event in ("subscription.paused", "subscription.resumed") and not data.get("id"):
                # A subscription may be paused more than once: only the event id tells a new pause from a retry.
                raise ma.ValidationError({"id": ["Give a unique id for pause and resume events."]})


def _generic_line(item: dict) -> Line:
    return Line(item["type"], item["product_id"], item["pricing_option_id"],
                line_ref=item["line_id"] or "", subscription_ref=item["subscription_id"], name=item["name"])


def generic_event(tree: dict) -> OrderEvent:
    try:
        data = GenericEventSchema().load(tree)
    except ma.ValidationError as error:
        raise InvalidPayload(errors=error.normalized_messages()) from None
    action = GENERIC_EVENTS[data["event"]]
    ev = OrderEvent(action, data["event"], test_mode=data["test"], email=data["email"], name=data["name"].strip(),
                    order_ref=data["order_id"], invoice_ref=data["invoice_id"],
                    subscription_ref=data["subscription_id"], effective_at=data["period_end"],
                    customer_ref=data["customer_id"])
    if action == Action.ORDER_COMPLETED:
        ev.lines = [_generic_line(item) for item in data["items"]]
        for line in ev.lines:
            line.subscription_ref = line.subscription_ref or ev.subscription_ref
    elif data["item"]:
        ev.lines = [_generic_line(data["item"])]
    line_part = ",".join(sorted(line.line_ref for line in ev.lines))
    ev.dedupe_key = _key("generic", data["id"]) if data["id"] else _key(
        data["event"], ev.order_ref, ev.invoice_ref, ev.subscription_ref, line_part)
    return ev
