"""What a signed-in member sees about themselves: the facts behind ``/account`` and ``GET /api/v1/me``.

Read-only. Everything is looked up from the member passed in, never from an id in the request, so a
member can only ever see their own data.

Other domains plug in here rather than being imported (the dependency direction points at us):

- :func:`register_card_update_url` adds a way to find where a member updates the card of a
  ``past_due`` grant (a cart's customer hub, our own billing's card-update page, ...);
- :func:`register_account_section` adds an HTML section to ``/account`` (billing's subscriptions).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable

from flask import Flask, current_app
from markupsafe import Markup
from sqlalchemy import select
from sqlalchemy.orm import Session

import timeutil
from membership.models import CourseStatus, Grant, GrantStatus, Level, Member

CardUpdateUrl = Callable[[Session, Grant], "str | None"]
AccountSection = Callable[[Session, Member], "Markup | str | None"]

# Per app, in app.extensions: the domains above membership plug into /account from their own init_app.
CARD_UPDATE_URLS = "coursegate.card_update_urls"
ACCOUNT_SECTIONS = "coursegate.account_sections"


def register_card_update_url(app: Flask, name: str, provider: CardUpdateUrl) -> None:
    """``provider(session, grant)`` returns the card-update URL for a past-due grant it knows, else None."""
    app.extensions.setdefault(CARD_UPDATE_URLS, {})[name] = provider


def register_account_section(app: Flask, name: str, render: AccountSection) -> None:
    """``render(session, member)`` returns trusted HTML for its own section of ``/account`` (or None)."""
    app.extensions.setdefault(ACCOUNT_SECTIONS, {})[name] = render


@dataclass
class LevelAccess:
    level: Level
    status: str  # "active", or "past_due" when every grant that opens it is past due
    ends_at: datetime | None  # None: no end date
    courses: list = field(default_factory=list)


@dataclass
class PastDueNotice:
    level: Level
    since: datetime | None
    access_ends_at: datetime | None  # when access stops unless the payment goes through
    card_update_url: str | None


@dataclass
class PastAccess:
    level: Level
    status: str  # revoked | expired | paused | ended
    ended_at: datetime | None


@dataclass
class AccountSummary:
    member: Member
    levels: list[LevelAccess]
    notices: list[PastDueNotice]
    past: list[PastAccess]

    @property
    def has_password(self) -> bool:
        return bool(self.member.password_hash)


def card_update_url(session: Session, grant: Grant) -> str | None:
    for provider in current_app.extensions.get(CARD_UPDATE_URLS, {}).values():
        url = provider(session, grant)
        if url:
            return url
    return None


def extra_sections(session: Session, member: Member) -> list[Markup]:
    sections = []
    for render in current_app.extensions.get(ACCOUNT_SECTIONS, {}).values():
        html = render(session, member)
        if html:
            sections.append(Markup(html))
    return sections


def summary(session: Session, member: Member, moment: datetime | None = None) -> AccountSummary:
    moment = moment or timeutil.now()
    grants = list(session.scalars(select(Grant).where(Grant.member_id == member.id).order_by(Grant.id)))

    open_grants: dict[int, list[Grant]] = {}
    for grant in grants:
        if grant.gives_access(moment):
            open_grants.setdefault(grant.level_id, []).append(grant)

    levels = []
    for level_grants in open_grants.values():
        level = level_grants[0].level
        ends = [g.ends_at for g in level_grants]
        if any(g.revoke_at for g in level_grants if g.status == GrantStatus.PAST_DUE):
            ends = [g.revoke_at or g.ends_at for g in level_grants]
        ends_at = None if any(e is None for e in ends) else max(ends)
        status = (GrantStatus.PAST_DUE if all(g.status == GrantStatus.PAST_DUE for g in level_grants)
                  else GrantStatus.ACTIVE)
        courses = [c for c in level.courses if c.status == CourseStatus.PUBLISHED]
        levels.append(LevelAccess(level=level, status=status, ends_at=ends_at, courses=courses))
    levels.sort(key=lambda item: item.level.name.lower())

    notices = [
        PastDueNotice(level=g.level, since=g.past_due_since, access_ends_at=g.revoke_at or g.ends_at,
                      card_update_url=card_update_url(session, g))
        for grants_of_level in open_grants.values() for g in grants_of_level if g.status == GrantStatus.PAST_DUE
    ]

    past: dict[int, PastAccess] = {}
    for grant in grants:
        if grant.level_id in open_grants or grant.starts_at > moment:
            continue
        status = grant.status if grant.status not in (GrantStatus.ACTIVE, GrantStatus.PAST_DUE) else "ended"
        ended_at = grant.revoked_at or grant.ends_at
        known = past.get(grant.level_id)
        if known is None or (ended_at and (known.ended_at is None or ended_at > known.ended_at)):
            past[grant.level_id] = PastAccess(level=grant.level, status=status, ended_at=ended_at)
    return AccountSummary(member=member, levels=levels, notices=notices,
                          past=sorted(past.values(), key=lambda item: item.level.name.lower()))
