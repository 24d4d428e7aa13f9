"""Courses, access levels, members and the grants that give a member a level."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, Column, ForeignKey, Index, String, Table, UniqueConstraint, and_, or_
from sqlalchemy.orm import Mapped, WriteOnlyMapped, mapped_column, relationship

import timeutil
from extensions import db


class CourseStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"


class GrantStatus(enum.StrEnum):
    ACTIVE = "active"
    PAST_DUE = "past_due"  # payment failed; access kept through the grace period
    PAUSED = "paused"
    REVOKED = "revoked"
    EXPIRED = "expired"


# Statuses under which a grant opens its level (subject to its dates).
ACCESS_STATUSES = (GrantStatus.ACTIVE, GrantStatus.PAST_DUE)


class GrantSourceKind(enum.StrEnum):
    MANUAL = "manual"
    ORDER = "order"  # a cart order line
    SUBSCRIPTION = "subscription"  # our own billing (mandate)
    AUTOMATION = "automation"
    IMPORT = "import"


level_courses = Table(
    "level_courses",
    db.metadata,
    Column("level_id", ForeignKey("levels.id", ondelete="CASCADE"), primary_key=True),
    Column("course_id", ForeignKey("courses.id", ondelete="CASCADE"), primary_key=True),
)


class Course(db.Model):
    __tablename__ = "courses"
    __table_args__ = (CheckConstraint("status IN ('draft', 'published')", name="status"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    status: Mapped[str] = mapped_column(String(20), default=CourseStatus.DRAFT)
    # Where the course lives on the owner's site (linked from /account and the welcome email).
    url: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now)
    updated_at: Mapped[datetime] = mapped_column(default=timeutil.now, onupdate=timeutil.now)

    levels: Mapped[list[Level]] = relationship(secondary=level_courses, back_populates="courses")


class Level(db.Model):
    __tablename__ = "levels"
    __table_args__ = (CheckConstraint("duration_days IS NULL OR duration_days > 0", name="duration_positive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    slug: Mapped[str] = mapped_column(String(100), unique=True)
    duration_days: Mapped[int | None]  # None: lifetime access
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now)
    updated_at: Mapped[datetime] = mapped_column(default=timeutil.now, onupdate=timeutil.now)

    courses: Mapped[list[Course]] = relationship(
        secondary=level_courses, back_populates="levels", order_by="Course.id"
    )


# The shape the API spec states for an email address; membership.emails.normalise_email checks the rest
# (email-validator: one address, no control characters, a real domain name).
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class Member(db.Model):
    __tablename__ = "members"
    __table_args__ = (
        # The service normalises; the database refuses anything that slipped past it.
        CheckConstraint("email = lower(trim(email))", name="email_normalised"),
        # The admin's member search (LIKE '%...%' on email or name); trigram GIN on PostgreSQL.
        Index("ix_members_email_trgm", "email", postgresql_using="gin", postgresql_ops={"email": "gin_trgm_ops"}),
        Index("ix_members_name_trgm", "name", postgresql_using="gin", postgresql_ops={"name": "gin_trgm_ops"}),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    external_source: Mapped[str | None] = mapped_column(String(100))
    keap_contact_id: Mapped[str | None] = mapped_column(String(50))
    phone: Mapped[str | None] = mapped_column(String(32))  # E.164, for SMS (card-update invitations)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    # Changes whenever a login link is superseded; links carry the value they were issued with.
    login_nonce: Mapped[str] = mapped_column(String(32), default="")
    # Stored in the browser session at sign-in; signing out or a new password moves it on, which ends every
    # session (and every copy of a session cookie) signed in before.
    session_generation: Mapped[int] = mapped_column(default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=timeutil.now, onupdate=timeutil.now)

    grants: WriteOnlyMapped[Grant] = relationship(back_populates="member", passive_deletes=True)


class Grant(db.Model):
    """One reason a member holds a level. Several grants may open the same level; each is revoked on its own."""

    __tablename__ = "grants"
    __table_args__ = (
        CheckConstraint(
            "status IN ('active', 'past_due', 'paused', 'revoked', 'expired')", name="status"
        ),
        CheckConstraint(
            "source_kind IN ('manual', 'order', 'subscription', 'automation', 'import')", name="source_kind"
        ),
        # A cart order line grants a level once, however often the order is delivered.
        UniqueConstraint("integration_id", "order_ref", "line_ref", "level_id", name="uq_grants_order_line_level"),
        Index("ix_grants_member_level_status", "member_id", "level_id", "status"),
        Index("ix_grants_integration_order", "integration_id", "order_ref"),
        Index("ix_grants_subscription", "integration_id", "subscription_ref"),
        Index("ix_grants_revoked_at", "revoked_at"),  # the admin dashboard's revocations per day
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    level_id: Mapped[int] = mapped_column(ForeignKey("levels.id", ondelete="RESTRICT"), index=True)
    status: Mapped[str] = mapped_column(String(20), default=GrantStatus.ACTIVE)
    starts_at: Mapped[datetime] = mapped_column(default=timeutil.now)
    ends_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    revoke_reason: Mapped[str | None] = mapped_column(String(200))
    # A revocation decided now but carried out later (a cancel at the end of the paid period,
    # a grace period running out); the periodic job acts on it.
    revoke_at: Mapped[datetime | None] = mapped_column(index=True)
    scheduled_revoke_reason: Mapped[str | None] = mapped_column(String(200))
    past_due_since: Mapped[datetime | None]

    source_kind: Mapped[str] = mapped_column(String(20), default=GrantSourceKind.MANUAL)
    integration_id: Mapped[int | None] = mapped_column(ForeignKey("integrations.id", ondelete="SET NULL"))
    order_ref: Mapped[str | None] = mapped_column(String(100))  # the cart's order id
    line_ref: Mapped[str | None] = mapped_column(String(100))  # e.g. "product-12", "bump-12", "upsell-3"
    subscription_ref: Mapped[str | None] = mapped_column(String(100))
    mandate_id: Mapped[int | None]  # our own billing, when source_kind is "subscription"
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now)
    updated_at: Mapped[datetime] = mapped_column(default=timeutil.now, onupdate=timeutil.now)

    member: Mapped[Member] = relationship(back_populates="grants")
    level: Mapped[Level] = relationship(lazy="joined")

    @classmethod
    def gives_access_at(cls, moment: datetime):
        """SQL condition: this grant opens its level at ``moment``."""
        return and_(
            cls.status.in_([s.value for s in ACCESS_STATUSES]),
            cls.starts_at <= moment,
            or_(cls.ends_at.is_(None), cls.ends_at > moment),
        )

    def gives_access(self, moment: datetime | None = None) -> bool:
        moment = moment or timeutil.now()
        return (
            self.status in ACCESS_STATUSES
            and self.starts_at <= moment
            and (self.ends_at is None or self.ends_at > moment)
        )


class ApiKey(db.Model):
    """An owner's API key. Only a SHA-256 of the key is kept: keys are long random strings, shown once."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16))  # shown in listings so the owner can tell keys apart
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class LoginLink(db.Model):
    """The use of one emailed login link, created when it is first followed.

    Keyed by a SHA-256 of the link's random id (never the token itself). A link keeps working for a
    short window after its first use, a few times (so an email scanner's visit does not burn it), and
    dies when the window closes or once a newer link of the same member has been used.
    """

    __tablename__ = "login_links"
    __table_args__ = (Index("ix_login_links_member_issued", "member_id", "issued_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    link_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(20))
    issued_at: Mapped[datetime]
    first_used_at: Mapped[datetime] = mapped_column(default=timeutil.now)
    last_used_at: Mapped[datetime] = mapped_column(default=timeutil.now)
    use_count: Mapped[int] = mapped_column(default=1)


class MemberChange(db.Model):
    """One profile field of a member changed (by the owner in the admin or the API): the member's history."""

    __tablename__ = "member_changes"
    __table_args__ = (Index("ix_member_changes_member_id", "member_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    field: Mapped[str] = mapped_column(String(40))  # email, name, phone, external_source
    old_value: Mapped[str | None] = mapped_column(String(320))
    new_value: Mapped[str | None] = mapped_column(String(320))
    changed_by: Mapped[str] = mapped_column(String(40))  # "owner admin", "owner API"
    note: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now)
