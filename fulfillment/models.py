"""Cart integrations and the owner's rules that map what was bought to access levels."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (JSON, CheckConstraint, Column, ForeignKey, Index, String, Table, Text, UniqueConstraint, false,
                        text)
from sqlalchemy.orm import Mapped, mapped_column, relationship

import timeutil
from encryption import EncryptedText
from extensions import db
from membership.models import Level


class IntegrationKind(enum.StrEnum):
    THRIVECART = "thrivecart"
    STRIPE = "stripe"
    GENERIC = "generic"
    KEAP = "keap"  # a Keap campaign's "Send HTTP Post" step (fulfillment/parsers/keap.py, fulfillment/keap_post.py)


class CancelAccess(enum.StrEnum):
    PERIOD_END = "period_end"
    IMMEDIATELY = "immediately"


class ItemType(enum.StrEnum):
    PRODUCT = "product"
    BUMP = "bump"
    UPSELL = "upsell"
    DOWNSELL = "downsell"


class Integration(db.Model):
    __tablename__ = "integrations"
    __table_args__ = (
        CheckConstraint("kind IN ('thrivecart', 'stripe', 'generic', 'keap')", name="kind"),
        CheckConstraint("cancel_access IN ('period_end', 'immediately')", name="cancel_access"),
        CheckConstraint("grace_days >= 0", name="grace_days_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    # Write-only: the API never returns it after creation, and logs never contain it. Stored encrypted
    # (encryption.py), as are previous_secret and api_key: a database dump alone forges no delivery.
    secret: Mapped[str | None] = mapped_column(EncryptedText)
    # During a rotation the previous secret keeps verifying until it expires.
    previous_secret: Mapped[str | None] = mapped_column(EncryptedText)
    previous_secret_expires_at: Mapped[datetime | None]
    # Stripe only: the restricted API key used to read a Checkout Session's line items.
    api_key: Mapped[str | None] = mapped_column(EncryptedText)
    accept_test_orders: Mapped[bool] = mapped_column(default=False)
    cancel_access: Mapped[str] = mapped_column(String(20), default=CancelAccess.PERIOD_END)
    grace_days: Mapped[int] = mapped_column(default=7)
    # Where the dunning email sends a member to update their card (e.g. the cart's customer hub).
    card_update_url: Mapped[str | None] = mapped_column(String(500))
    # Keap only: the external_source an enrolment sets on the member (null: "infusionsoft").
    external_source: Mapped[str | None] = mapped_column(String(100))
    # Where a member manages the subscriptions this cart bills (e.g. ThriveCart's customer hub); the billing
    # page links it beside the cart's subscriptions.
    manage_subscriptions_url: Mapped[str | None] = mapped_column(String(500))
    # Email an existing member who gains levels through this cart ("you now have access to ..."); new members
    # get the welcome email either way.
    access_added_email: Mapped[bool] = mapped_column(default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now)
    updated_at: Mapped[datetime] = mapped_column(default=timeutil.now, onupdate=timeutil.now)

    rules: Mapped[list[FulfillmentRule]] = relationship(
        back_populates="integration", cascade="all, delete-orphan", order_by="FulfillmentRule.id"
    )


rule_levels = Table(
    "rule_levels",
    db.metadata,
    Column("rule_id", ForeignKey("fulfillment_rules.id", ondelete="CASCADE"), primary_key=True),
    Column("level_id", ForeignKey("levels.id", ondelete="CASCADE"), primary_key=True),
)


class FulfillmentRule(db.Model):
    """Cart product (+ pricing option, or every option when null) + item type -> levels.

    A rule for a specific pricing option wins over the all-options rule for the same product and type.
    """

    __tablename__ = "fulfillment_rules"
    __table_args__ = (
        CheckConstraint("item_type IN ('product', 'bump', 'upsell', 'downsell')", name="item_type"),
        Index(
            "uq_rules_specific_option",
            "integration_id", "item_type", "product_id", "pricing_option_id",
            unique=True,
            sqlite_where=text("pricing_option_id IS NOT NULL"),
            postgresql_where=text("pricing_option_id IS NOT NULL"),
        ),
        # NULL never equals NULL in a unique index, so the all-options rule gets its own.
        Index(
            "uq_rules_all_options",
            "integration_id", "item_type", "product_id",
            unique=True,
            sqlite_where=text("pricing_option_id IS NULL"),
            postgresql_where=text("pricing_option_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    item_type: Mapped[str] = mapped_column(String(20), default=ItemType.PRODUCT)
    product_id: Mapped[str] = mapped_column(String(100))
    pricing_option_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now)
    updated_at: Mapped[datetime] = mapped_column(default=timeutil.now, onupdate=timeutil.now)

    integration: Mapped[Integration] = relationship(back_populates="rules")
    levels: Mapped[list[Level]] = relationship(secondary=rule_levels, order_by="Level.id")


class EventStatus(enum.StrEnum):
    RECEIVED = "received"  # stored, not yet processed (only ever seen inside the receiving transaction)
    PROCESSED = "processed"
    DUPLICATE = "duplicate"
    IGNORED = "ignored"
    NEEDS_ATTENTION = "needs_attention"
    FAILED = "failed"


class WebhookEvent(db.Model):
    """One authenticated delivery from a cart, stored before it is processed: the record of what a cart said.

    ``dedupe_key`` is unique per integration: a redelivery of the same event is stored as its own row with
    status ``duplicate``, no key and ``duplicate_of_id`` pointing at the original.
    """

    __tablename__ = "webhook_events"
    __table_args__ = (
        CheckConstraint(
            "status IN ('received', 'processed', 'duplicate', 'ignored', 'needs_attention', 'failed')",
            name="status",
        ),
        UniqueConstraint("integration_id", "dedupe_key", name="uq_webhook_events_integration_dedupe"),
        Index("ix_webhook_events_integration_status", "integration_id", "status"),
        Index("ix_webhook_events_integration_customer", "integration_id", "customer_ref"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int | None] = mapped_column(ForeignKey("integrations.id", ondelete="SET NULL"))
    provider: Mapped[str] = mapped_column(String(20))
    event_type: Mapped[str] = mapped_column(String(100))
    dedupe_key: Mapped[str | None] = mapped_column(String(300))
    duplicate_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("webhook_events.id", ondelete="SET NULL"), index=True)  # deletes look duplicates up by it
    status: Mapped[str] = mapped_column(String(20), default=EventStatus.RECEIVED)
    test_mode: Mapped[bool] = mapped_column(default=False)
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    order_ref: Mapped[str | None] = mapped_column(String(100))
    customer_ref: Mapped[str | None] = mapped_column(String(100))  # the cart's id for the buyer
    # The body as received with the secret removed, and the headers minus anything secret.
    content_type: Mapped[str] = mapped_column(String(100), default="")
    body: Mapped[str] = mapped_column(Text)
    headers: Mapped[dict] = mapped_column(JSON, default=dict)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(1000))
    received_at: Mapped[datetime] = mapped_column(default=timeutil.now, index=True)
    processed_at: Mapped[datetime | None]

    integration: Mapped[Integration | None] = relationship()


class AdjustmentKind(enum.StrEnum):
    REFUND = "refund"
    CANCEL = "cancel"


class OrderAdjustment(db.Model):
    """A refund or cancellation of an order line, kept so it also applies to grants created later.

    Carts deliver out of order: a refund that arrives before its order is recorded here, and the order,
    when it comes, never grants the refunded line (``line_ref`` null = the whole order).
    """

    __tablename__ = "order_adjustments"
    __table_args__ = (
        CheckConstraint("kind IN ('refund', 'cancel')", name="kind"),
        Index("ix_order_adjustments_order", "integration_id", "order_ref"),
        Index("ix_order_adjustments_subscription", "integration_id", "subscription_ref"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    integration_id: Mapped[int] = mapped_column(ForeignKey("integrations.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    order_ref: Mapped[str | None] = mapped_column(String(100))
    line_ref: Mapped[str | None] = mapped_column(String(100))
    subscription_ref: Mapped[str | None] = mapped_column(String(100))
    # A cancellation at the end of the paid period: when access ends (null = at once).
    effective_at: Mapped[datetime | None]
    event_id: Mapped[int | None] = mapped_column(ForeignKey("webhook_events.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now)
