"""Owner accounts: the people who sign in to /admin (members never do)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column

import timeutil
from extensions import db
from fulfillment.models import WebhookEvent


class Owner(db.Model):
    __tablename__ = "owners"
    __table_args__ = (CheckConstraint("email = lower(trim(email))", name="email_normalised"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    # No longer set: a whole-account lock let anyone who knew the email lock the owner out. Wrong passwords are
    # counted per (account, client address) in the rate limits' storage (admin/lockout.py). Columns kept until
    # a release drops them (expand-then-contract).
    failed_attempts: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    # As members': signing out, a new password or "sign out everywhere" moves it on, ending older sessions.
    session_generation: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now)


# The admin's event log filtered by status (newest first), the dashboard's "events needing attention", and the
# deliveries behind a member's orders. Declared here: they serve the admin's pages, not the webhook path.
Index("ix_webhook_events_status_id", WebhookEvent.status, WebhookEvent.id)
Index("ix_webhook_events_integration_order", WebhookEvent.integration_id, WebhookEvent.order_ref)
