"""Calls out to carts' APIs, with timeouts, errors mapped to domain errors."""

from __future__ import annotations

import logging

import stripe

from fulfillment.errors import StripeApiError
from fulfillment.models import Integration

logger = logging.getLogger(__name__)

STRIPE_TIMEOUT_SECONDS = 10


def stripe_client(integration: Integration) -> stripe.StripeClient:
    return stripe.StripeClient(integration.api_key or "", max_network_retries=0,
                               http_client=stripe.RequestsClient(timeout=STRIPE_TIMEOUT_SECONDS))


def checkout_line_items(integration: Integration, session_id: str) -> list[dict]:
    """Every line item of a Checkout Session (paging through), as plain dicts."""
    client = stripe_client(integration)
    items: list[dict] = []
    params: dict = {"limit": 100}
    try:
        while True:
            page = client.v1.checkout.sessions.line_items.list(session_id, params=params)
            batch = [item.to_dict() for item in page.data]
            items.extend(batch)
            if not page.has_more or not batch:
                return items
            params = {"limit": 100, "starting_after": batch[-1]["id"]}
    except stripe.StripeError as error:
        logger.warning("integration %s: fetching line items of %s failed: %s", integration.id, session_id,
                       type(error).__name__)
        raise StripeApiError(f"Fetching the checkout session's line items failed: {error.user_message or type(error).__name__}") from None
