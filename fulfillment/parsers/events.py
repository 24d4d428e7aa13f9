"""What every cart's payload becomes: one normalised :class:`OrderEvent` with its :class:`Line` items,
and the small readers the carts' modules share (JSON with a depth limit, paths into a tree, text)."""

from __future__ import annotations

import hashlib
import html
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

from fulfillment import cleaning
from fulfillment.errors import UnparseableBody
from fulfillment.models import ItemType


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
    KEAP_POST = "keap_post"  # a Keap campaign's HTTP Post (fulfillment/parsers/keap.py, fulfillment/keap_post.py)


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
    # Keap HTTP Post: what the owner's pairs ask for (a fulfillment.parsers.keap.KeapPost).
    keap: object | None = None


def key_of(*parts: object) -> str:
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
    if depth_of(tree) > MAX_DEPTH:
        raise UnparseableBody(f"The JSON body nests deeper than {MAX_DEPTH} levels.")
    return cleaning.tree(tree)


def depth_of(tree) -> int:
    deepest, pending = 0, [(tree, 1)]
    while pending:
        node, depth = pending.pop()
        deepest = max(deepest, depth)
        if depth > MAX_DEPTH:
            break
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        pending.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest



def get_path(tree, *path):
    node = tree
    for part in path:
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            return None
    return node


def text_of(value) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    value = html.unescape(str(value)).strip()
    return value or None


EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC)


def in_range(moment: datetime) -> datetime | None:
    """A cart's date the database can store (year 1 at +14:00 is year 0 in UTC), else None (unknown)."""
    try:
        return moment if EARLIEST <= moment.astimezone(UTC) < LATEST else None
    except OverflowError:
        return None
