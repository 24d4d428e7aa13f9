"""Owner accounts: the people who sign in to /admin (members never do)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

import timeutil
from extensions import db


class Owner(db.Model):
    __tablename__ = "owners"
    __table_args__ = (CheckConstraint("email = lower(trim(email))", name="email_normalised"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    # Consecutive failed sign-ins; reset by a successful one. Reaching the limit sets locked_until.
    failed_attempts: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    last_login_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now)
