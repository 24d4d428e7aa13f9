"""Automation rules and their runs, per-integration event tag names, and outgoing webhooks (the CRM link)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

import timeutil
from encryption import EncryptedText
from extensions import db


class Trigger(enum.StrEnum):
    ORDER_COMPLETED = "order_completed"
    LINE_REFUNDED = "line_refunded"
    SUBSCRIPTION_CANCELLED = "subscription_cancelled"
    PAYMENT_FAILED = "payment_failed"
    PAYMENT_RECOVERED = "payment_recovered"
    GRANT_REVOKED = "grant_revoked"
    TAG_ADDED = "tag_added"
    TAG_REMOVED = "tag_removed"
    CARD_UPDATED = "card_updated"
    SUBSCRIPTION_PAUSED = "subscription_paused"
    SUBSCRIPTION_RESUMED = "subscription_resumed"
    CANCEL_SCHEDULED = "cancel_scheduled"  # cancelled; access runs to the end of the paid period


# An outgoing webhook's URL: absolute http(s), only the characters RFC 3986 allows (an international host name
# in its xn-- form, anything else percent-encoded). The API checks it and the spec states it.
ENDPOINT_URL_PATTERN = r"^https?://[A-Za-z0-9\-._~%!$&'()*+,;=:@\[\]]+(?:[/?#][A-Za-z0-9\-._~%!$&'()*+,;=:@/?#\[\]]*)?$"

TRIGGERS = tuple(t.value for t in Trigger)


class RunStatus(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"  # an action raised; the rule's changes were rolled back, the run row stays
    DEPTH_LIMIT = "depth_limit"  # the event was nested too deep (a loop that slipped past validation)


class AutomationRule(db.Model):
    """When ``trigger`` happens (optionally only for a level, product or tag), run ``actions`` in order."""

    __tablename__ = "automation_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    trigger: Mapped[str] = mapped_column(String(40), index=True)
    level_id: Mapped[int | None] = mapped_column(ForeignKey("levels.id", ondelete="CASCADE"))
    product_id: Mapped[str | None] = mapped_column(String(100))
    tag: Mapped[str | None] = mapped_column(String(100))
    actions: Mapped[list] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(default=True)
    # Set on the rules of the default set ("payment_failed", "payment_recovered"): install-defaults is idempotent.
    default_key: Mapped[str | None] = mapped_column(String(50), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now)
    updated_at: Mapped[datetime] = mapped_column(default=timeutil.now, onupdate=timeutil.now)


class AutomationEvent(db.Model):
    """One triggering event, recorded once: a replay of the same (trigger, event key) runs nothing."""

    __tablename__ = "automation_events"
    __table_args__ = (UniqueConstraint("trigger", "event_key", name="uq_automation_events_trigger_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    trigger: Mapped[str] = mapped_column(String(40))
    event_key: Mapped[str] = mapped_column(String(255))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    level_id: Mapped[int | None]
    product_id: Mapped[str | None] = mapped_column(String(100))
    integration_id: Mapped[int | None]
    tag: Mapped[str | None] = mapped_column(String(100))
    depth: Mapped[int] = mapped_column(default=0)
    context: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now, index=True)


class AutomationRun(db.Model):
    """One rule run for one event: what it did and how it ended. Unique per (rule, event key)."""

    __tablename__ = "automation_runs"
    __table_args__ = (
        UniqueConstraint("rule_id", "event_key", name="uq_automation_runs_rule_event"),
        CheckConstraint("status IN ('succeeded', 'failed', 'depth_limit')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("automation_rules.id", ondelete="SET NULL"), index=True)
    rule_name: Mapped[str] = mapped_column(String(200))
    event_id: Mapped[int] = mapped_column(ForeignKey("automation_events.id", ondelete="CASCADE"), index=True)
    event_key: Mapped[str] = mapped_column(String(255))
    trigger: Mapped[str] = mapped_column(String(40))
    member_id: Mapped[int | None] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(20), default=RunStatus.SUCCEEDED)
    actions_taken: Mapped[list] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now, index=True)

    event: Mapped[AutomationEvent] = relationship()


class EventTagNames(db.Model):
    """Per integration: the names of the tags built-in events apply (null column = the default name)."""

    __tablename__ = "event_tag_names"

    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"), primary_key=True)
    purchased: Mapped[str | None] = mapped_column(String(100))
    refunded: Mapped[str | None] = mapped_column(String(100))
    cancelled: Mapped[str | None] = mapped_column(String(100))
    payment_failed: Mapped[str | None] = mapped_column(String(100))
    payment_recovered: Mapped[str | None] = mapped_column(String(100))
    card_updated: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(default=timeutil.now, onupdate=timeutil.now)


class AutomationSetting(db.Model):
    """Small service-wide facts, e.g. when the default rule set was installed (so a deleted default stays deleted)."""

    __tablename__ = "automation_settings"

    key: Mapped[str] = mapped_column(String(50), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now)


# --- outgoing webhooks ---------------------------------------------------------------------------------

class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"  # gave up after three days of retries; can be redelivered by hand


class WebhookEndpoint(db.Model):
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(String(200), default="")
    # Write-only: shown once when the endpoint is created, never returned again, never logged; stored
    # encrypted (encryption.py).
    secret: Mapped[str] = mapped_column(EncryptedText)
    events: Mapped[list] = mapped_column(JSON)  # trigger names, or ["*"] for every event
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now)
    updated_at: Mapped[datetime] = mapped_column(default=timeutil.now, onupdate=timeutil.now)


class WebhookDelivery(db.Model):
    """One event for one endpoint. The body is stored as sent, so the signature covers exactly these bytes."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status"),
        Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_endpoint", "endpoint_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    event_type: Mapped[str] = mapped_column(String(60))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("automation_events.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.PENDING)
    attempt_count: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(1000))
    last_status_code: Mapped[int | None]
    redelivery_of: Mapped[int | None] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now)
    delivered_at: Mapped[datetime | None]

    endpoint: Mapped[WebhookEndpoint] = relationship()
    attempts: Mapped[list[WebhookAttempt]] = relationship(
        back_populates="delivery", order_by="WebhookAttempt.id", cascade="all, delete-orphan", passive_deletes=True
    )


class WebhookAttempt(db.Model):
    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), index=True)
    attempted_at: Mapped[datetime] = mapped_column(default=timeutil.now)
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(String(1000))
    duration_ms: Mapped[int] = mapped_column(default=0)

    delivery: Mapped[WebhookDelivery] = relationship(back_populates="attempts")
