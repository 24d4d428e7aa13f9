"""What fulfillment tells the member pages: where to update the card of a past-due grant from a cart."""

from __future__ import annotations

from flask import Flask
from sqlalchemy.orm import Session

from fulfillment.models import Integration
from membership import account
from membership.models import Grant


def card_update_url(session: Session, grant: Grant) -> str | None:
    """The integration's configured card-update page (e.g. the cart's customer hub), if any."""
    if grant.integration_id is None:
        return None
    integration = session.get(Integration, grant.integration_id)
    return integration.card_update_url if integration is not None else None


def init_app(app: Flask) -> None:
    account.register_card_update_url(app, "integration", card_update_url)
