"""Read-only answers for the hottest calls: the owner's access check, and what a member's access token lists.

Both read what is committed when they run; nothing is cached between requests, so a revocation shows in the
next answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, and_, bindparam, select, true
from sqlalchemy.orm import Session

import timeutil
from membership.errors import InvalidEmail
from membership.models import ApiKey, Course, CourseStatus, Grant, Level, Member, level_courses
from membership.services import normalise_email
from sqlutil import Read, autocommit_engine


def _owner_access():
    """The owner's key and the access answer in one statement: a row per level that opens the course for the
    email right now (one row with no level when none does), and no row at all when the key is not valid. The
    levels are looked up only when the key row exists (a nested loop with nothing outside runs nothing inside),
    so a caller without a valid key learns nothing, not even from timing."""
    opens = (
        select(Level.id.label("level_id"), Level.slug.label("slug"))
        .join(Grant, Grant.level_id == Level.id)
        .join(Member, Member.id == Grant.member_id)
        .join(level_courses, level_courses.c.level_id == Level.id)
        .join(Course, Course.id == level_courses.c.course_id)
        .where(Member.email == bindparam("email", None), Course.slug == bindparam("course", None),
               Grant.gives_access_at(bindparam("moment", None, type_=Grant.starts_at.type)))
        .distinct()
        .subquery("opens")
    )
    return (
        select(ApiKey.id, opens.c.slug)
        .select_from(ApiKey.__table__.outerjoin(opens, true()))
        .where(ApiKey.key_hash == bindparam("key_hash", None), ApiKey.revoked_at.is_(None))
        .order_by(opens.c.level_id)
    )


OWNER_ACCESS = Read(_owner_access)


def owner_access(engine: Engine, key_hash: str, email: str, course_slug: str,
                 moment: datetime | None = None) -> list[str] | None:
    """``GET /api/v1/access`` in one round trip: ``None`` when no valid (unrevoked) API key has ``key_hash``,
    else the slugs of the levels that let ``email`` (any case; not an address: nobody) open ``course_slug`` at
    ``moment`` (default now), by level id; empty when none does. Same rule as ``services.check_access``."""
    try:
        normalised: str | None = normalise_email(email)
    except InvalidEmail:
        normalised = None  # matches no member, but the key is still checked
    rows = OWNER_ACCESS.rows(autocommit_engine(engine), key_hash=key_hash, email=normalised, course=course_slug,
                             moment=moment or timeutil.now())
    if not rows:
        return None
    return [slug for _, slug in rows if slug is not None]


@dataclass(frozen=True)
class MemberAccess:
    levels: list[str]  # slugs of the levels the member holds now, by level id
    courses: list[str]  # slugs of the published courses they open, by course id (drafts are not shown to members)
    until: datetime | None  # when the first of those levels ends (end date or scheduled revocation); None: none ends


# Built once: constructing it from the ORM's expressions cost more than running it.
_MEMBER_ACCESS = (
    select(Level.id, Level.slug, Grant.id, Grant.ends_at, Grant.revoke_at, Course.id, Course.slug)
    .join(Grant, Grant.level_id == Level.id)
    .outerjoin(level_courses, level_courses.c.level_id == Level.id)
    .outerjoin(Course, and_(Course.id == level_courses.c.course_id, Course.status == CourseStatus.PUBLISHED))
    .where(Grant.member_id == bindparam("member_id"),
           Grant.gives_access_at(bindparam("moment", type_=Grant.starts_at.type)))
)


def member_access(session: Session, member_id: int, moment: datetime | None = None) -> MemberAccess:
    """What the member's access token lists: the same grants as ``/api/v1/me``, in one statement."""
    moment = moment or timeutil.now()
    rows = session.execute(_MEMBER_ACCESS, {"member_id": member_id, "moment": moment}).all()
    levels: dict[int, str] = {}
    courses: dict[int, str] = {}
    grant_ends: dict[int, dict[int, datetime | None]] = {}  # level id -> grant id -> when that grant ends
    for level_id, level_slug, grant_id, ends_at, revoke_at, course_id, course_slug in rows:
        levels[level_id] = level_slug
        if course_id is not None:
            courses[course_id] = course_slug
        # A scheduled revocation already due but not yet carried out still gives access (as the access check says).
        ends = [end for end in (ends_at, revoke_at) if end is not None and end > moment]
        grant_ends.setdefault(level_id, {})[grant_id] = min(ends) if ends else None
    # A level lasts as long as its longest grant; the token is good until the first level ends.
    level_ends = [None if None in ends.values() else max(ends.values()) for ends in grant_ends.values()]
    known = [end for end in level_ends if end is not None]
    return MemberAccess(levels=[levels[i] for i in sorted(levels)], courses=[courses[i] for i in sorted(courses)],
                        until=min(known) if known else None)
