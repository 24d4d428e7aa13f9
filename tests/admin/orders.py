"""The real ThriveCart subscription order, grown a bump and an upsell: what the admin's end-to-end tests post."""

from __future__ import annotations

import copy
import json
from urllib.parse import urlencode

from tests.conftest import fixture_path
from tests.fulfillment.helpers import to_form_pairs


def order_with_bump_and_upsell(*, email: str = "jane.buyer@example.com", order_id: str = "23370556") -> dict:
    """``order.success.subscription.json`` in live mode, product 12 plus its bump and upsell 3."""
    tree = json.loads(fixture_path("thrivecart", "order.success.subscription.json").read_text())
    tree["mode"], tree["mode_int"] = "live", "2"
    tree["order_id"] = tree["order"]["id"] = order_id
    if email != tree["customer"]["email"]:  # another buyer: ThriveCart's customer id is theirs
        tree["customer"]["email"] = email
        tree["customer_id"] = tree["customer"]["id"] = f"cust-{email}"
    product = tree["order"]["charges"][0]
    bump = copy.deepcopy(product) | {"name": "Bonus Pack", "item_type": "bump", "item_identifier": "bump_12",
                                     "amount": "4700", "type": "single", "related_to_recur": "false",
                                     "payment_plan_id": "", "payment_plan_name": ""}
    upsell = copy.deepcopy(product) | {"name": "VIP Coaching", "reference": "3", "item_type": "upsell",
                                       "item_identifier": "upsell_3", "amount": "19700", "type": "single",
                                       "related_to_recur": "false", "payment_plan_id": "", "payment_plan_name": ""}
    tree["order"]["charges"] = [product, bump, upsell]
    tree["purchase_map"] = ["product-12", "bump-12", "upsell-3"]
    tree["purchase_map_flat"] = ",".join(tree["purchase_map"])
    tree["purchases"] = [charge["name"] for charge in tree["order"]["charges"]]
    return tree


def form_body(tree: dict) -> tuple[bytes, str]:
    """As ThriveCart posts by default: a form with PHP bracket keys."""
    return urlencode(to_form_pairs(tree)).encode(), "application/x-www-form-urlencoded"
