"""Keap contacts remembered per member, and the record of every card change (Keap's and our own)."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, CheckConstraint, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

import timeutil
from extensions import db


class KeapContactLink(db.Model):
    """A Keap contact matched to a member (by email, or by a Keap campaign post). Kept, so that a member
    who changes their email here still sees their Keap subscriptions."""

    __tablename__ = "keap_contact_links"
    __table_args__ = (UniqueConstraint("member_id", "contact_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    contact_id: Mapped[str] = mapped_column(String(50))
    matched_by: Mapped[str] = mapped_column(String(20), default="email")  # email | remembered | campaign
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now)


class CardChangeSource(enum.StrEnum):
    KEAP = "keap"
    OWN = "own"  # our own billing's mandates


class CardChangedBy(enum.StrEnum):
    MEMBER = "member"
    OWNER = "owner"
    INVITATION = "invitation"  # someone following an owner's update-by-invitation link
    SYSTEM = "system"


class CardChange(db.Model):
    """One card replaced, and the subscriptions (Keap) or mandates (ours) re-pointed to the new card.

    Only what PCI lets us keep: the provider's opaque payment-method ids, brand, last 4 and expiry.
    """

    __tablename__ = "card_changes"
    __table_args__ = (
        CheckConstraint("source IN ('keap', 'own')", name="source"),
        CheckConstraint("changed_by IN ('member', 'owner', 'invitation', 'system')", name="changed_by"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(10))
    # Keap subscription ids, or our mandate ids, as strings.
    subscription_refs: Mapped[list[str]] = mapped_column(JSON, default=list)
    account_ref: Mapped[str | None] = mapped_column(String(100))  # Keap contact id / merchant account
    old_payment_method_ref: Mapped[str | None] = mapped_column(String(255))
    new_payment_method_ref: Mapped[str] = mapped_column(String(255))
    old_brand: Mapped[str | None] = mapped_column(String(40))
    old_last4: Mapped[str | None] = mapped_column(String(4))
    new_brand: Mapped[str | None] = mapped_column(String(40))
    new_last4: Mapped[str | None] = mapped_column(String(4))
    new_exp_month: Mapped[int | None]
    new_exp_year: Mapped[int | None]
    changed_by: Mapped[str] = mapped_column(String(20), default=CardChangedBy.MEMBER)
    changed_by_ref: Mapped[str | None] = mapped_column(String(100))  # api key id, invitation id, ...
    changed_at: Mapped[datetime] = mapped_column(default=timeutil.now, index=True)
