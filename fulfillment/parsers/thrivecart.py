"""ThriveCart: form posts (PHP-style ``customer[email]`` keys) or JSON ("Receive results as JSON"), each
event read into an :class:`OrderEvent`; ``decode_thrivecart`` refuses only a body it cannot read at all."""

from __future__ import annotations

import functools
import json
import re
from datetime import UTC, datetime

from fulfillment import cleaning
from fulfillment.errors import UnparseableBody
from fulfillment.models import ItemType
from fulfillment.parsers.events import (ITEM_TYPES, MAX_DEPTH, Action, Line, OrderEvent, decode_json, get_path,
                                        in_range, key_of, text_of)

# --- reading the body -------------------------------------------------------------------------------------

def decode_thrivecart(body: bytes, content_type: str) -> dict:
    """Form (PHP bracket keys) or JSON -> the same tree; every scalar a string, ``"null"`` -> None."""
    return read_thrivecart(body, content_type)[0]


def read_thrivecart(body: bytes, content_type: str) -> tuple[dict, list[cleaning.FormPair] | None]:
    """The tree of :func:`decode_thrivecart` and, for a form, the pairs it was read from (the receiver stores
    the body from them without reading it again); ``None`` for JSON."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise UnparseableBody("The body is not UTF-8 text.") from None
    stripped = text.strip()
    if not stripped:
        return {}, None
    if "json" in content_type.lower() or stripped.startswith("{"):
        form, tree = None, decode_json(stripped)
        if isinstance(tree, dict):
            tree = _normalise(tree)
    else:
        try:
            form = cleaning.form_pairs(text, max_fields=5000)
        except ValueError:
            raise UnparseableBody("The form body could not be parsed.") from None
        tree = _php_form_tree(form)
    if not isinstance(tree, dict):  # "0=1": PHP's form reading makes a list of it, which is no delivery
        raise UnparseableBody("The form must be name=value pairs with names, not a list.")
    return tree, form


_BRACKETS = re.compile(r"\[([^\[\]]*)\]")


def _php_form_tree(form: list[cleaning.FormPair]) -> dict | list:
    """``order[charges][0][id]=1&purchase_map[]=product-1`` -> nested dicts and lists, as PHP reads it, with
    every string cleaned and ``"null"`` read as None (what :func:`_normalise` does to a JSON body)."""
    tree: dict = {}
    for _, raw_key, value in form:
        path = _key_path(raw_key)
        node = tree
        last = len(path) - 1
        for i, part in enumerate(path):
            if part == "":  # "a[]": the next numeric index
                part = str(sum(1 for k in node if _is_index(k)))
            if i == last:
                node[part] = value
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
    return _form_node(tree)


@functools.lru_cache(maxsize=4096)
def _key_path(raw_key: str) -> tuple[str, ...]:
    """``order[charges][0][id]`` -> ``("order", "charges", "0", "id")``; a cart sends the same names every time."""
    head, _, rest = raw_key.partition("[")
    path = (head, *_BRACKETS.findall("[" + rest)) if rest else (head,)
    if len(path) > MAX_DEPTH:
        raise UnparseableBody(f"The form nests deeper than {MAX_DEPTH} levels.")
    return path


def _is_index(key: str) -> bool:
    # ASCII digits only ("²".isdigit() is true) and short enough to be a list position, not a 5000-digit number.
    return key.isascii() and key.isdigit() and len(key) <= 9


def _form_node(node):
    """A dict whose keys are all list positions becomes a list in their order; strings are cleaned."""
    if isinstance(node, dict):
        if node and all(_is_index(k) for k in node):
            return [_form_node(node[k]) for k in sorted(node, key=int)]
        return {cleaning.text(k): _form_node(v) for k, v in node.items()}
    return None if node == "null" else cleaning.text(node)


def _normalise(node):
    """Every scalar a cleaned string (:func:`cleaning.text`), keys included; ``"null"`` -> None."""
    if isinstance(node, dict):
        return {cleaning.text(str(k)): _normalise(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_normalise(v) for v in node]
    if node is None or node == "null":
        return None
    if isinstance(node, bool):
        return "true" if node else "false"
    return cleaning.text(str(node))



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
    return text_of(tree.get("event"))


def _tc_line_ref(tree: dict, event: str) -> str | None:
    for section in ("refund", "subscription"):
        kind, ident = text_of(get_path(tree, section, "type")), text_of(get_path(tree, section, "id"))
        if kind and ident:
            return f"{kind}-{ident}"
    purchases = _purchase_map(tree)
    return ",".join(sorted(purchases)) if purchases else None


def thrivecart_dedupe_key(tree: dict) -> str:
    event = thrivecart_event_type(tree)
    order = text_of(tree.get("order_id")) or text_of(get_path(tree, "order", "id"))
    invoice = text_of(tree.get("invoice_id"))
    if event in TC_REBILLS and invoice:
        return key_of(event, order, invoice, _tc_line_ref(tree, event or ""))
    if text_of(tree.get("webhook_id")):
        return key_of("webhook", text_of(tree.get("webhook_id")))
    if text_of(tree.get("event_id")):
        return key_of(event, "event", text_of(tree.get("event_id")))
    if TC_ACTIONS.get(event or "") == Action.ORDER_COMPLETED:
        return key_of(event, order, invoice, _tc_line_ref(tree, event or ""))
    # A subscription can be paused, resumed or fail a payment more than once: the event's own date tells a new
    # event from a retry of the same one.
    return key_of(event, order, invoice, _tc_line_ref(tree, event or ""),
                text_of(tree.get("date_unix")) or text_of(tree.get("date")))


def _purchase_map(tree: dict) -> list[str]:
    raw = tree.get("purchase_map")
    if isinstance(raw, dict):
        raw = list(raw.values())
    if isinstance(raw, str):
        raw = raw.split(",")
    if not raw:
        flat = text_of(tree.get("purchase_map_flat"))
        raw = flat.split(",") if flat else []
    return [entry.strip() for entry in raw if isinstance(entry, str) and entry.strip()]


def _split_ref(ref: str) -> tuple[str, str] | None:
    kind, sep, ident = ref.partition("-")
    if not sep or kind not in ITEM_TYPES or not ident:
        return None
    return kind, ident


def _charges(tree: dict) -> list[dict]:
    charges = get_path(tree, "order", "charges")
    if isinstance(charges, dict):
        charges = list(charges.values())
    return [c for c in charges or [] if isinstance(c, dict)]


def _pricing_option(tree: dict, charges: list[dict], kind: str, ident: str) -> tuple[str | None, str | None]:
    """The pricing option (``payment_plan_id``) and name of one bought item, from ``order.charges``."""
    typed = [c for c in charges if text_of(c.get("reference")) == ident and text_of(c.get("item_type")) == kind]
    # Older payloads have no item_type: a charge with the reference is the product's.
    untyped = [c for c in charges if text_of(c.get("reference")) == ident and not text_of(c.get("item_type"))]
    chosen = typed or (untyped if kind == ItemType.PRODUCT else [])
    for charge in chosen:
        plan = text_of(charge.get("payment_plan_id"))
        if plan:
            return plan, text_of(charge.get("name"))
    if kind == ItemType.PRODUCT and text_of(tree.get("base_product")) == ident:
        return text_of(tree.get("base_payment_plan")), text_of(tree.get("base_product_name"))
    return None, (text_of(chosen[0].get("name")) if chosen else None)


def _tc_name(tree: dict) -> str:
    customer = tree.get("customer") if isinstance(tree.get("customer"), dict) else {}
    name = text_of(customer.get("name"))
    if name:
        return name
    first = text_of(customer.get("first_name")) or text_of(customer.get("firstname")) or ""
    last = text_of(customer.get("last_name")) or text_of(customer.get("lastname")) or ""
    return f"{first} {last}".strip()


def _timestamp(unix, iso) -> datetime | None:
    unix, iso = text_of(unix), text_of(iso)
    if unix and unix.isascii() and unix.isdigit() and len(unix) <= 11:
        return in_range(datetime.fromtimestamp(int(unix), UTC))
    for value in (iso, unix):
        if value:
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return in_range(parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC))
    return None


def thrivecart_event(tree: dict) -> OrderEvent:
    event_type = thrivecart_event_type(tree)
    if not event_type:
        return OrderEvent(Action.CHECK, "")
    action = TC_ACTIONS.get(event_type, Action.IGNORED)
    mode_int, mode = text_of(tree.get("mode_int")), text_of(tree.get("mode"))
    ev = OrderEvent(
        action=action,
        event_type=event_type,
        dedupe_key=thrivecart_dedupe_key(tree),
        test_mode=mode_int == "1" or mode == "test",
        email=text_of(get_path(tree, "customer", "email")),
        name=_tc_name(tree),
        customer_ref=text_of(tree.get("customer_id")) or text_of(get_path(tree, "customer", "id")),
        order_ref=text_of(tree.get("order_id")) or text_of(get_path(tree, "order", "id")),
        invoice_ref=text_of(tree.get("invoice_id")),
        subscription_ref=text_of(tree.get("subscription_id")),
    )
    if action == Action.IGNORED:
        ev.note = f"{event_type} does not change access."
        return ev
    if action == Action.ORDER_COMPLETED:
        charges = _charges(tree)
        subscription_ids = tree.get("subscription_ids") if isinstance(tree.get("subscription_ids"), dict) else {}
        refs = _purchase_map(tree)
        if not refs and text_of(tree.get("base_product")):
            refs = [f"product-{text_of(tree.get('base_product'))}"]
        for ref in dict.fromkeys(refs):  # keep order, drop repeats
            split = _split_ref(ref)
            if split is None:
                continue
            kind, ident = split
            plan, name = _pricing_option(tree, charges, kind, ident)
            ev.lines.append(Line(kind, ident, plan, subscription_ref=text_of(subscription_ids.get(ref)), name=name))
        if not ev.lines:
            ev.problem = "The order names no item (no purchase_map and no base_product)."
        elif not ev.email:
            ev.problem = "The order has no customer[email]."
        return ev
    # Refunds and subscription events name one line.
    section = "refund" if action == Action.LINE_REFUNDED else "subscription"
    kind, ident = text_of(get_path(tree, section, "type")), text_of(get_path(tree, section, "id"))
    if not (kind and ident) and event_type.startswith("order_refund_"):
        kind = event_type.removeprefix("order_refund_")
        ident = text_of(get_path(tree, "refund", "product_id")) or text_of(tree.get("product_id"))
    if not (kind and ident) and section == "subscription":
        kind, ident = ItemType.PRODUCT.value, text_of(tree.get("base_product"))
    if kind in ITEM_TYPES and ident:
        ev.lines.append(Line(kind, ident, text_of(tree.get("base_payment_plan")), subscription_ref=ev.subscription_ref))
    if action == Action.SUBSCRIPTION_CANCELLED:
        ev.effective_at = _timestamp(get_path(tree, "subscription", "billing_period_end"),
                                     get_path(tree, "subscription", "billing_period_end_iso8601")) \
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

