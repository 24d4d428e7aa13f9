"""The membership rules: members, grants and access. Functions take a session, flush and never commit."""

from __future__ import annotations

import functools
import re
import secrets
from datetime import datetime

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

import signals
import timeutil
from emails import credentials as email_credentials
from emails import services as email_services
from emails.errors import CannotResend
from emails.models import OutboundEmail
from membership import courses, login_links
from membership.emails import normalise_email  # noqa: F401  (re-exported: callers import it from here)
from membership.errors import DuplicateEmail, InvalidEmail
from membership.models import Course, Grant, Level, Member
from sqlutil import attach, insert_ignoring_conflicts

def member_by_email(session: Session, email: str) -> Member | None:
    return session.scalar(select(Member).where(Member.email == normalise_email(email)))


def create_member(session: Session, email: str, *, name: str = "", external_source: str | None = None) -> Member:
    member = Member(email=normalise_email(email), name=name.strip(), external_source=external_source)
    try:
        with session.begin_nested():
            session.add(member)
            session.flush()
    except IntegrityError:
        raise DuplicateEmail() from None
    return member


def update_member(session: Session, member: Member, changes: dict) -> Member:
    old_email = member.email
    if "name" in changes:
        member.name = changes["name"].strip()
    if "external_source" in changes:
        source = changes["external_source"]
        member.external_source = source.strip() or None if source is not None else None
    if "phone" in changes:
        member.phone = changes["phone"] or None
    if "email" in changes:
        member.email = normalise_email(changes["email"])
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise DuplicateEmail() from None
    if member.email != old_email:  # the Keap link listens (keap.listeners)
        signals.member_email_changed.send(session, member=member, old_email=old_email)
    return member


def find_or_create_member(session: Session, email: str, *, name: str = "") -> tuple[Member, bool]:
    """The member with this email (any case), or a new one. Returns ``(member, created)``: the one-person form
    of :func:`find_or_create_members`."""
    normalised = normalise_email(email)
    return find_or_create_members(session, {normalised: name})[normalised]


def members_by_email(session: Session, emails) -> dict[str, Member]:
    """The members with these (normalised) emails, in one statement."""
    emails = list(dict.fromkeys(emails))
    if not emails:
        return {}
    return {member.email: member for member in session.scalars(select(Member).where(Member.email.in_(emails)))}


def find_or_create_members(session: Session, people: dict[str, str]) -> dict[str, tuple[Member, bool]]:
    """For each normalised email (mapped to the name to give a new member), the member who has it, or a new one:
    ``{email: (member, created)}``. One statement to look them up, one to create the missing; a member found
    without a name takes the one given. Safe when two transactions race for the same new email (see
    :func:`create_or_find_members`)."""
    found = members_by_email(session, people)
    for email, member in found.items():
        if people[email].strip() and not member.name:
            member.name = people[email].strip()
    result = {email: (member, False) for email, member in found.items()}
    missing = {email: name for email, name in people.items() if email not in found}
    result.update(create_or_find_members(session, missing))
    return result


def create_or_find_member(session: Session, email: str, *, name: str = "") -> tuple[Member, bool]:
    """:func:`create_or_find_members` for one email."""
    normalised = normalise_email(email)
    return create_or_find_members(session, {normalised: name})[normalised]


def create_or_find_members(session: Session, people: dict[str, str]) -> dict[str, tuple[Member, bool]]:
    """New members for these normalised emails, or the ones that have them: ``{email: (member, created)}``.

    Inserts first (one ``INSERT ... ON CONFLICT DO NOTHING RETURNING``, no savepoint): for callers that have
    just looked the emails up and found nobody, such as cart orders. When two transactions race for the same
    new email, the loser's insert waits for the winner's commit, does nothing for that row, and the loser finds
    it with one more statement."""
    if not people:
        return {}
    moment = timeutil.now()
    values = {email: dict(email=email, name=name.strip(), external_source=None, keap_contact_id=None,
                          password_hash=None, login_nonce="", created_at=moment, updated_at=moment)
              for email, name in people.items()}
    inserted = insert_ignoring_conflicts(session, Member, ("email",), list(values.values()),
                                         returning=("id", "email"))
    result = {row.email: (attach(session, Member, {**values[row.email], "id": row.id}), True) for row in inserted}
    taken = [email for email in people if email not in result]
    if taken:
        found = members_by_email(session, taken)
        if len(found) < len(taken):  # pragma: no cover - a conflicting row vanished again
            raise DuplicateEmail()
        result.update((email, (member, False)) for email, member in found.items())
    return result


def levels_with_access(session: Session, member_id: int, moment: datetime | None = None) -> list[Level]:
    moment = moment or timeutil.now()
    return list(
        session.scalars(
            select(Level)
            .where(Level.id.in_(select(Grant.level_id).where(Grant.member_id == member_id,
                                                             Grant.gives_access_at(moment))))
            .order_by(Level.id)
        )
    )


def check_access(session: Session, email: str, course_slug: str) -> tuple[bool, list[Level]]:
    """Does the member with ``email`` have a level that opens ``course_slug`` right now?

    One indexed query: members.email (unique) -> grants (member, level, status) -> level_courses.
    """
    try:
        normalised = normalise_email(email)
    except InvalidEmail:
        return False, []
    moment = timeutil.now()
    levels = list(
        session.scalars(
            select(Level)
            .join(Grant, Grant.level_id == Level.id)
            .join(Member, Member.id == Grant.member_id)
            .join(Level.courses)
            .where(Member.email == normalised, Course.slug == course_slug, Grant.gives_access_at(moment))
            .distinct()
            .order_by(Level.id)
        )
    )
    return bool(levels), levels


def login_url(member: Member, *, purpose: str = "welcome") -> str:
    """A one-click login link (``welcome``: valid 7 days; ``login``: 1 hour). See membership/login_links.py."""
    token = login_links.issue_token(member, purpose)
    return f"{current_app.config['SITE_URL']}/login/{token}"


def member_at(session: Session, member_id: int, address: str) -> Member:
    """The member an emailed credential is made for, still at the address the email goes to; else
    :class:`~emails.credentials.LinkUnavailable` (a link to the account must not reach an address it left)."""
    member = session.get(Member, member_id)
    if member is None:
        raise email_credentials.LinkUnavailable("The member this email was for no longer exists.")
    if member.email != address.strip().lower():
        raise email_credentials.LinkUnavailable(
            "The member's address changed after this email was queued, so it went out to nobody. Resend it to "
            "send a new link to the current address.")
    return member


def _read_login_link(match: re.Match) -> tuple[str, ...] | None:
    payload = login_links.payload_of(match.group("token"))
    return (str(payload["m"]), payload["p"]) if payload else None


def _make_login_link(session: Session, what: tuple[str, ...], address: str) -> str:
    member_id, purpose = what
    return login_url(member_at(session, int(member_id), address), purpose=purpose)


# The outbox keeps a marker where a login link was; delivery makes a new link (see emails/credentials.py).
email_credentials.register(email_credentials.Credential(
    "login", "/login/" + email_credentials.TOKEN, _read_login_link, _make_login_link))


def welcome_context(member: Member, levels: list[Level]) -> dict:
    """The welcome email's context, with a new login link."""
    return {"member_name": member.name or "there", "login_url": login_url(member),
            "levels": [level.name for level in levels], "courses": courses.course_links(levels)}


def queue_welcome_email(session: Session, member: Member, levels: list[Level]) -> None:
    """The welcome email with a one-click login link: once per member, ever."""
    email_services.enqueue_many(session, [welcome_message(member, levels)])


def welcome_message(member: Member, levels: list[Level]) -> tuple:
    """The welcome email as ``emails.services.enqueue_many`` takes it, keyed once per member."""
    return ("welcome", member.email, welcome_context(member, levels), f"welcome:member:{member.id}", member.id)


def _login_context(member: Member) -> dict:
    return {"member_name": member.name or "there", "login_url": login_url(member, purpose=login_links.LOGIN)}


def queue_login_link(session: Session, email: str) -> bool:
    """The email a member asks for on /login. Nothing happens for an unknown email. Returns whether one was queued.

    Runs as a job after the response, so the page answers the same way, in the same time, for anyone.
    """
    try:
        member = member_by_email(session, email)
    except InvalidEmail:
        return False
    if member is None:
        return False
    email_services.enqueue(
        session,
        "login_link",
        member.email,
        _login_context(member),
        member_id=member.id,
    )
    return True


def set_password(session: Session, member: Member, password: str) -> None:
    """A new password ends every session signed in before (the caller signs the current browser in again)."""
    member.password_hash = generate_password_hash(password)
    member.session_generation += 1
    session.flush()


@functools.cache
def _no_member_hash() -> str:
    """Checked when no member has the email, so a wrong email costs as much time as a wrong password."""
    return generate_password_hash(secrets.token_urlsafe(16))


def member_by_password(session: Session, email: str, password: str) -> Member | None:
    try:
        member = member_by_email(session, email)
    except InvalidEmail:
        member = None
    if member is None or not member.password_hash:
        check_password_hash(_no_member_hash(), password)
        return None
    return member if check_password_hash(member.password_hash, password) else None


def member_count(session: Session) -> int:
    return session.scalar(select(func.count(Member.id))) or 0


# --- resending a login email makes a new link: the stored one may have expired or been used ----------------

def _member_of(session: Session, email: OutboundEmail) -> Member:
    member = session.get(Member, email.member_id) if email.member_id else None
    if member is None:
        raise CannotResend("The member this email was for no longer exists, so no login link can be made.")
    return member


@email_services.fresh_context_on_resend("welcome")
def _welcome_again(session: Session, email: OutboundEmail) -> tuple[str, dict]:
    member = _member_of(session, email)
    # To the address on the account now: the link logs into that account.
    return member.email, welcome_context(member, levels_with_access(session, member.id))


@email_services.fresh_context_on_resend("login_link")
def _login_link_again(session: Session, email: OutboundEmail) -> tuple[str, dict]:
    member = _member_of(session, email)
    return member.email, _login_context(member)
