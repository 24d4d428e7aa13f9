"""Building and posting cart deliveries in tests."""

from __future__ import annotations

import copy
import json
from urllib.parse import urlencode

from sqlalchemy import func, select

from emails.models import OutboundEmail
from extensions import db
from fulfillment.models import WebhookEvent
from membership.models import Grant, Member
from tests.conftest import fixture_path

ENCODINGS = ["form", "json"]


def load_tc(name: str) -> dict:
    """A real ThriveCart delivery from shared/reference/fixtures/thrivecart/ (a fresh copy)."""
    return json.loads(fixture_path("thrivecart", name).read_text())


def to_form_pairs(tree, prefix: str = "") -> list[tuple[str, str]]:
    """PHP bracket keys, the way ThriveCart posts by default."""
    pairs: list[tuple[str, str]] = []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    for key, value in items:
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, (dict, list)):
            pairs.extend(to_form_pairs(value, name))
        else:
            pairs.append((name, "" if value is None else str(value)))
    return pairs


def encode(tree: dict, encoding: str) -> tuple[bytes, str]:
    if encoding == "json":
        return json.dumps(tree).encode(), "application/json"
    return urlencode(to_form_pairs(tree)).encode(), "application/x-www-form-urlencoded"


def post_tc(client, integration_id: int, tree: dict, encoding: str = "form"):
    body, content_type = encode(tree, encoding)
    return client.post(f"/webhooks/thrivecart/{integration_id}", data=body, content_type=content_type)


def order(base: str = "order.success.subscription.json", *, order_id: str | None = None, email: str | None = None,
          items: list[str] | None = None, live: bool = False, **extra) -> dict:
    """A variant of a real order.success: other order id / email / purchase_map, charges to match."""
    tree = copy.deepcopy(load_tc(base))
    if order_id:
        tree["order_id"] = order_id
        tree.setdefault("order", {})["id"] = order_id
    if email:
        tree["customer"]["email"] = email
        # Another buyer: ThriveCart's customer id follows the (normalised) email.
        tree["customer_id"] = tree["customer"]["id"] = "cust-" + email.strip().lower()
    if items is not None:
        tree["purchase_map"] = items
        tree["purchase_map_flat"] = ",".join(items)
        plan_of = extra.pop("plans", {})
        tree["order"]["charges"] = [
            {"name": f"Item {ref} &amp; more", "reference": ref.split("-", 1)[1], "item_type": ref.split("-", 1)[0],
             "amount": "1000", "type": "single", "quantity": "1",
             "payment_plan_id": plan_of.get(ref, "9" + ref.split("-", 1)[1])}
            for ref in items
        ]
        tree["subscription_ids"] = extra.pop("subscription_ids", {})
    if live:
        tree["mode"], tree["mode_int"] = "live", "2"
    tree.update(extra)
    return tree


def members() -> list[Member]:
    return list(db.session.scalars(select(Member).order_by(Member.id)))


def grants(**where) -> list[Grant]:
    query = select(Grant).order_by(Grant.id)
    for key, value in where.items():
        query = query.where(getattr(Grant, key) == value)
    return list(db.session.scalars(query))


def emails(template: str | None = None) -> list[OutboundEmail]:
    query = select(OutboundEmail).order_by(OutboundEmail.id)
    if template:
        query = query.where(OutboundEmail.template == template)
    return list(db.session.scalars(query))


def event_count() -> int:
    return db.session.scalar(select(func.count(WebhookEvent.id))) or 0


def event(event_id: int) -> WebhookEvent:
    db.session.expire_all()
    return db.session.get(WebhookEvent, event_id)
