"""A member's profile edits and their history: the admin's edit form and ``PATCH /api/v1/members/<id>`` both
change a profile here, so both validate alike and both leave the same record."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from membership import services
from membership.models import Member, MemberChange

PROFILE_FIELDS = ("email", "name", "phone", "external_source")
HISTORY_ROWS = 50


def keap_link_note(member: Member) -> str | None:
    """What an email change did to the member's Keap link: the stored contact stays (the email-change
    listeners even look the old address up first), so their Keap subscriptions still show."""
    return f"Keap contact {member.keap_contact_id} kept." if member.keap_contact_id else None


def update_profile(session: Session, member: Member, changes: dict, *, by: str) -> list[MemberChange]:
    """Apply ``changes`` (as ``MemberUpdate`` loads them) and record each field that really changed.

    Raises what :func:`membership.services.update_member` raises (``DuplicateEmail``, ``InvalidEmail``).
    Flushes, never commits."""
    before = {name: getattr(member, name) for name in PROFILE_FIELDS}
    services.update_member(session, member, changes)
    recorded = []
    for name in PROFILE_FIELDS:
        old, new = before[name], getattr(member, name)
        if (old or None) != (new or None):
            row = MemberChange(member_id=member.id, field=name, old_value=old or None, new_value=new or None,
                               changed_by=by, note=keap_link_note(member) if name == "email" else None)
            session.add(row)
            recorded.append(row)
    session.flush()
    return recorded


def member_history(session: Session, member: Member, limit: int = HISTORY_ROWS) -> list[MemberChange]:
    return list(session.scalars(select(MemberChange).where(MemberChange.member_id == member.id)
                                .order_by(MemberChange.id.desc()).limit(limit)))
