"""The outbox: every email is a row before it is a message."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

import timeutil
from extensions import db


class EmailStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"  # gave up after the last retry; can be resent by the owner


class OutboundEmail(db.Model):
    __tablename__ = "outbound_emails"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status"),
        Index("ix_outbound_emails_status_next", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    recipient: Mapped[str] = mapped_column(String(320), index=True)
    template: Mapped[str] = mapped_column(String(50), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default=EmailStatus.PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(String(1000))
    # e.g. "welcome:member:42": one welcome per member ever, however often an order is redelivered.
    dedupe_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    member_id: Mapped[int | None] = mapped_column(index=True)
    next_attempt_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now, index=True)
    sent_at: Mapped[datetime | None]
    # Set on a copy the owner asked to send again (POST /api/v1/emails/<id>/resend).
    resent_from_id: Mapped[int | None] = mapped_column(ForeignKey("outbound_emails.id", ondelete="SET NULL"))


class EmailTemplateOverride(db.Model):
    """The owner's own subject and/or body text for one catalogued email, with ``{placeholders}``."""

    __tablename__ = "email_template_overrides"

    id: Mapped[int] = mapped_column(primary_key=True)
    template: Mapped[str] = mapped_column(String(50), unique=True)
    subject: Mapped[str | None] = mapped_column(String(300))  # None: the default subject
    body: Mapped[str | None] = mapped_column(Text)  # None: the default body
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now)
    updated_at: Mapped[datetime] = mapped_column(default=timeutil.now, onupdate=timeutil.now)
