"""Plans, mandates (the customer's signed authorisation), invoices and their payment attempts.

Price and interval are immutable on plans and mandates; the database enforces it with triggers (see the
0300 migration), the API answers 409 ``plan_immutable``.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

import timeutil
from extensions import db
from membership.models import Grant, Level, Member


class IntervalUnit(enum.StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    YEAR = "year"


class PlanState(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    DELETED = "deleted"


class MandateStatus(enum.StrEnum):
    PENDING_AUTHORISATION = "pending_authorisation"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    UNPAID = "unpaid"
    CANCELLED = "cancelled"
    EXPIRED = "expired"  # never signed within the pending window


LIVE_MANDATE_STATUSES = (MandateStatus.PENDING_AUTHORISATION, MandateStatus.ACTIVE, MandateStatus.PAST_DUE,
                         MandateStatus.UNPAID)
BILLABLE_MANDATE_STATUSES = (MandateStatus.ACTIVE, MandateStatus.PAST_DUE)


class InvoiceStatus(enum.StrEnum):
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"


class PaymentStatus(enum.StrEnum):
    PENDING = "pending"  # not charged yet
    FAILED = "failed"  # last attempt failed; a retry may be scheduled
    REQUIRES_ACTION = "requires_action"  # the customer must authenticate
    SUCCEEDED = "succeeded"
    NOT_REQUIRED = "not_required"  # voided before any charge
    PROCESSING = "processing"  # charged; the provider has not settled it yet (a webhook or the sweep will)


class AttemptOutcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED_RETRYABLE = "failed_retryable"
    FAILED_HARD = "failed_hard"
    REQUIRES_ACTION = "requires_action"
    GATEWAY_ERROR = "gateway_error"  # the provider refused to process it: nothing was charged
    # In doubt: the call may have charged (timeout, reset, 5xx) or the provider is still settling it. Never
    # followed by a new attempt before the gateway is asked what became of this one (billing/charges.py).
    UNKNOWN = "unknown"
    PROCESSING = "processing"


IN_DOUBT_OUTCOMES = (AttemptOutcome.UNKNOWN, AttemptOutcome.PROCESSING)


def _in(values) -> str:
    return ", ".join(f"'{v.value}'" for v in values)


class Plan(db.Model):
    __tablename__ = "billing_plans"
    __table_args__ = (
        CheckConstraint(f"interval_unit IN ({_in(IntervalUnit)})", name="interval_unit"),
        CheckConstraint(f"state IN ({_in(PlanState)})", name="state"),
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("interval_count > 0", name="interval_count_positive"),
        CheckConstraint("max_pause_days IS NULL OR max_pause_days > 0", name="max_pause_days_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    level_id: Mapped[int] = mapped_column(ForeignKey("levels.id", ondelete="RESTRICT"), index=True)
    amount: Mapped[int]  # minor units (cents)
    currency: Mapped[str] = mapped_column(String(3))  # ISO 4217, lower-case
    interval_unit: Mapped[str] = mapped_column(String(10))
    interval_count: Mapped[int] = mapped_column(default=1)
    state: Mapped[str] = mapped_column(String(10), default=PlanState.ACTIVE)
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now)
    updated_at: Mapped[datetime] = mapped_column(default=timeutil.now, onupdate=timeutil.now)
    deleted_at: Mapped[datetime | None]
    # Members may pause their own subscription for up to this many days (None: pausing is not offered).
    max_pause_days: Mapped[int | None]
    # Whether the level stays open while a subscription is paused (else access waits for the resume).
    access_during_pause: Mapped[bool] = mapped_column(default=False, server_default=false())

    level: Mapped[Level] = relationship(lazy="joined")


class PaymentMethod(db.Model):
    """What we keep of a card: the gateway's token and display details. Never the number or the CVC."""

    __tablename__ = "billing_payment_methods"
    __table_args__ = (
        UniqueConstraint("gateway", "token", name="uq_billing_payment_methods_gateway_token"),
        CheckConstraint("exp_month BETWEEN 1 AND 12", name="exp_month"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    gateway: Mapped[str] = mapped_column(String(20))
    token: Mapped[str] = mapped_column(String(255))  # sbx_pm_... or pm_...
    customer_ref: Mapped[str | None] = mapped_column(String(255))  # the gateway's customer (Stripe cus_...)
    brand: Mapped[str] = mapped_column(String(20))
    last4: Mapped[str] = mapped_column(String(4))
    exp_month: Mapped[int]
    exp_year: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now)
    replaced_at: Mapped[datetime | None]  # a newer card took over every subscription that used this one


class Mandate(db.Model):
    __tablename__ = "billing_mandates"
    __table_args__ = (
        CheckConstraint(f"status IN ({_in(MandateStatus)})", name="status"),
        CheckConstraint(f"interval_unit IN ({_in(IntervalUnit)})", name="interval_unit"),
        Index("ix_billing_mandates_status_period_end", "status", "current_period_end"),
        Index("ix_billing_mandates_status_created", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("billing_plans.id", ondelete="RESTRICT"), index=True)
    payment_method_id: Mapped[int | None] = mapped_column(
        ForeignKey("billing_payment_methods.id", ondelete="SET NULL"))
    gateway: Mapped[str] = mapped_column(String(20))
    gateway_ref: Mapped[str | None] = mapped_column(String(255))  # the signing session at the gateway
    # Frozen at signing (database triggers refuse changes):
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    interval_unit: Mapped[str] = mapped_column(String(10))
    interval_count: Mapped[int]
    authorisation_text: Mapped[str] = mapped_column(Text)

    status: Mapped[str] = mapped_column(String(30), default=MandateStatus.PENDING_AUTHORISATION)
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now)
    signed_at: Mapped[datetime | None]
    # End of the latest period invoiced; the next invoice covers [current_period_end, + interval).
    current_period_end: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    cancel_reason: Mapped[str | None] = mapped_column(String(50))
    # A pause the member asked for: no invoice is issued before ``pause_until`` (billing/pauses.py).
    paused_at: Mapped[datetime | None]
    pause_until: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=timeutil.now, onupdate=timeutil.now)

    member: Mapped[Member] = relationship()
    plan: Mapped[Plan] = relationship()
    payment_method: Mapped[PaymentMethod | None] = relationship()


class Invoice(db.Model):
    __tablename__ = "billing_invoices"
    __table_args__ = (
        UniqueConstraint("mandate_id", "period_start", name="uq_billing_invoices_mandate_period"),
        CheckConstraint(f"status IN ({_in(InvoiceStatus)})", name="status"),
        CheckConstraint(f"payment_status IN ({_in(PaymentStatus)})", name="payment_status"),
        Index("ix_billing_invoices_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(40), unique=True)
    mandate_id: Mapped[int] = mapped_column(ForeignKey("billing_mandates.id", ondelete="CASCADE"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    issued_at: Mapped[datetime]
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(20), default=InvoiceStatus.OPEN)
    payment_status: Mapped[str] = mapped_column(String(20), default=PaymentStatus.PENDING)
    attempt_count: Mapped[int] = mapped_column(default=0)  # charges that failed (drives the retry schedule)
    next_attempt_at: Mapped[datetime | None]  # None: no automatic charge scheduled
    # A tick that is charging this invoice; other ticks leave it alone.
    claim_token: Mapped[str | None] = mapped_column(String(32))
    claimed_at: Mapped[datetime | None]
    action_ref: Mapped[str | None] = mapped_column(String(255))  # the payment awaiting authentication
    paid_at: Mapped[datetime | None]
    voided_at: Mapped[datetime | None]
    void_reason: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now)
    updated_at: Mapped[datetime] = mapped_column(default=timeutil.now, onupdate=timeutil.now)

    mandate: Mapped[Mandate] = relationship()
    attempts: Mapped[list[PaymentAttempt]] = relationship(back_populates="invoice", order_by="PaymentAttempt.id")


class PaymentAttempt(db.Model):
    __tablename__ = "billing_payment_attempts"
    __table_args__ = (
        CheckConstraint(f"outcome IN ({_in(AttemptOutcome)})", name="outcome"),
        Index("ix_billing_payment_attempts_in_doubt", "outcome", "created_at"),  # the sweep's search
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("billing_invoices.id", ondelete="CASCADE"), index=True)
    payment_method_id: Mapped[int | None] = mapped_column(
        ForeignKey("billing_payment_methods.id", ondelete="SET NULL"))
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    outcome: Mapped[str] = mapped_column(String(20))
    gateway: Mapped[str] = mapped_column(String(20))
    gateway_ref: Mapped[str | None] = mapped_column(String(255))
    # The key the charge was sent with: an in-doubt attempt is retried under the same one, never a new one.
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    message: Mapped[str | None] = mapped_column(String(500))
    settled_at: Mapped[datetime | None]  # when an in-doubt outcome was settled (webhook, sweep, retry)
    initiated_by: Mapped[str] = mapped_column(String(20))  # tick | customer | owner
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now)

    invoice: Mapped[Invoice] = relationship(back_populates="attempts")


# The grant a mandate renews is looked up by mandate (membership's table; the index is billing's need).
Index("ix_grants_mandate_id", Grant.mandate_id)


# --- the sandbox gateway's own records (it plays the provider; no card number is kept here either) ---

class SandboxCard(db.Model):
    __tablename__ = "billing_sandbox_cards"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    behaviour: Mapped[str] = mapped_column(String(30))  # success | decline | insufficient_funds | ...
    brand: Mapped[str] = mapped_column(String(20))
    last4: Mapped[str] = mapped_column(String(4))
    exp_month: Mapped[int]
    exp_year: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now)


class SandboxPayment(db.Model):
    __tablename__ = "billing_sandbox_payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(64), unique=True)
    idempotency_key: Mapped[str] = mapped_column(String(100), unique=True)
    card_token: Mapped[str] = mapped_column(String(64), index=True)
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(30))  # succeeded | failed | requires_action
    decline_code: Mapped[str | None] = mapped_column(String(50))
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now)


# --- update-by-invitation: an owner asks a member to add or replace a card ------------------------------

class InvitationState(enum.StrEnum):
    SENT = "sent"
    OPENED = "opened"
    COMPLETED = "completed"
    EXPIRED = "expired"  # shown, never stored: a sent or opened invitation past its expiry
    REVOKED = "revoked"


class CardInvitation(db.Model):
    """A signed, single-use, expiring link to a page where the member adds or replaces one card.

    The link itself is never stored: only a SHA-256 of the random id inside it (``token_hash``).
    """

    __tablename__ = "billing_card_invitations"
    __table_args__ = (
        CheckConstraint("status IN ('sent', 'opened', 'completed', 'revoked')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    # The card in question; None when the member has no payment method yet (the page adds a first one).
    payment_method_id: Mapped[int | None] = mapped_column(
        ForeignKey("billing_payment_methods.id", ondelete="SET NULL"))
    new_payment_method_id: Mapped[int | None] = mapped_column(
        ForeignKey("billing_payment_methods.id", ondelete="SET NULL"))
    channels: Mapped[list[str]] = mapped_column(JSON, default=list)
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)  # set when the message is sent
    status: Mapped[str] = mapped_column(String(20), default=InvitationState.SENT)
    expires_at: Mapped[datetime]
    setup_ref: Mapped[str | None] = mapped_column(String(255))  # the gateway's hosted capture in progress
    email_status: Mapped[str | None] = mapped_column(String(20))  # sent | failed
    sms_status: Mapped[str | None] = mapped_column(String(20))  # sent | failed | None (not asked)
    sms_ref: Mapped[str | None] = mapped_column(String(64))  # Twilio's message sid
    created_by_ref: Mapped[str | None] = mapped_column(String(100))  # the owner's api key or admin user
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now)
    sent_at: Mapped[datetime | None]
    opened_at: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    member: Mapped[Member] = relationship()
    payment_method: Mapped[PaymentMethod | None] = relationship(foreign_keys=[payment_method_id])

    def state(self, moment: datetime | None = None) -> str:
        if self.status in (InvitationState.SENT, InvitationState.OPENED):
            if (moment or timeutil.now()) >= self.expires_at:
                return InvitationState.EXPIRED
        return self.status
