"""One-click login links: signed, expiring, and usable only a little.

A link is an itsdangerous token (salt :data:`tokens.LOGIN_LINK`) carrying the member id, the member's
``login_nonce``, the purpose (``welcome``: 7 days, ``login``: 1 hour), a random link id and the issue
time. Nothing is stored when a link is issued. Opening it (GET) only shows a page with a sign-in button;
the button's POST is what uses it. The first time it is used a :class:`LoginLink` row
keyed by a SHA-256 of the link id records the use; the link then keeps working for a short window
(``LOGIN_LINK_REUSE_WINDOW`` seconds) and a few uses (``LOGIN_LINK_MAX_USES``), as Ghost does, so the
visit of an email security scanner does not burn it. It is dead after that window, or as soon as a
link issued later has been used, or when the member's ``login_nonce`` changes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import current_app
from itsdangerous import BadSignature
from sqlalchemy import delete, exists, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import timeutil
from membership import tokens
from membership.models import LoginLink, Member

WELCOME = "welcome"
LOGIN = "login"

# purpose -> the setting holding how long such a link is valid, in seconds
MAX_AGE_SETTINGS = {WELCOME: "WELCOME_LINK_MAX_AGE", LOGIN: "LOGIN_LINK_MAX_AGE"}

OK = "ok"
EXPIRED = "expired"
USED = "used"  # used up, past its window after first use, or superseded by a newer link
INVALID = "invalid"  # tampered, not ours, or for a member who no longer exists


@dataclass(frozen=True)
class Redemption:
    status: str
    member: Member | None = None


def max_age(purpose: str) -> int:
    return int(current_app.config[MAX_AGE_SETTINGS[purpose]])


def issue_token(member: Member, purpose: str = WELCOME) -> str:
    if purpose not in MAX_AGE_SETTINGS:
        raise ValueError(f"unknown login link purpose {purpose!r}")
    issued_ms = int(timeutil.now().timestamp() * 1000)
    payload = {"m": member.id, "n": member.login_nonce, "p": purpose, "j": secrets.token_urlsafe(12),
               "t": issued_ms}
    return tokens.sign(tokens.LOGIN_LINK, payload)


def payload_of(token: str) -> dict | None:
    """What a genuine link (signed by us, expired or not) was issued for, ``{"m": member id, "p": purpose}``."""
    try:
        parsed = _parse(tokens.serializer(tokens.LOGIN_LINK).loads(token))
    except BadSignature:
        return None
    return {"m": parsed[0], "p": parsed[2]} if parsed else None


def link_hash(link_id: str) -> str:
    return hashlib.sha256(link_id.encode()).hexdigest()


def _parse(payload: object) -> tuple[int, str, str, str, datetime] | None:
    if not isinstance(payload, dict):
        return None
    member_id, nonce, purpose, link_id, issued_ms = (payload.get(k) for k in ("m", "n", "p", "j", "t"))
    if not (isinstance(member_id, int) and isinstance(nonce, str) and purpose in MAX_AGE_SETTINGS
            and isinstance(link_id, str) and link_id and isinstance(issued_ms, int)):
        return None
    return member_id, nonce, purpose, link_id, datetime.fromtimestamp(issued_ms / 1000, UTC)


def redeem(session: Session, token: str) -> Redemption:
    """Check a link and record its use. Flushes; the caller signs the member in and commits."""
    found = _verify(session, token)
    if isinstance(found, Redemption):
        return found
    member, digest, purpose, issued_at = found
    return _record_use(session, member, digest, purpose, issued_at, timeutil.now())


def peek(session: Session, token: str) -> Redemption:
    """What :func:`redeem` would answer now, without using the link: opening it (a GET, as a mail scanner
    does) only shows the page whose button signs in."""
    found = _verify(session, token)
    if isinstance(found, Redemption):
        return found
    member, digest, _, _ = found
    link = session.scalar(select(LoginLink).where(LoginLink.link_hash == digest))
    if link is not None and _spent(link, timeutil.now()):
        return Redemption(USED, member)
    return Redemption(OK, member)


def _verify(session: Session, token: str) -> Redemption | tuple[Member, str, str, datetime]:
    """A Redemption when the link cannot sign in at all; else ``(member, link hash, purpose, issued_at)``."""
    outer_age = max(max_age(purpose) for purpose in MAX_AGE_SETTINGS)
    check = tokens.check(tokens.LOGIN_LINK, token, max_age=outer_age)
    if check.status == "expired":
        return Redemption(EXPIRED)
    parsed = _parse(check.payload) if check.status == "ok" else None
    if parsed is None:
        return Redemption(INVALID)
    member_id, nonce, purpose, link_id, issued_at = parsed
    if timeutil.now() - issued_at > timedelta(seconds=max_age(purpose)):
        return Redemption(EXPIRED)
    member = session.get(Member, member_id)
    if member is None:
        return Redemption(INVALID)
    if not hmac.compare_digest(member.login_nonce, nonce):
        return Redemption(USED, member)
    digest = link_hash(link_id)
    newer_used = session.scalar(select(exists().where(
        LoginLink.member_id == member.id, LoginLink.issued_at > issued_at, LoginLink.link_hash != digest)))
    if newer_used:
        return Redemption(USED, member)
    return member, digest, purpose, issued_at


def _spent(link: LoginLink, moment: datetime) -> bool:
    """Past its reuse window, or used as often as a link may be."""
    config = current_app.config
    window = timedelta(seconds=int(config["LOGIN_LINK_REUSE_WINDOW"]))
    return moment - link.first_used_at > window or link.use_count >= int(config["LOGIN_LINK_MAX_USES"])


def _record_use(session: Session, member: Member, digest: str, purpose: str, issued_at: datetime,
                moment: datetime) -> Redemption:
    link = session.scalar(select(LoginLink).where(LoginLink.link_hash == digest).with_for_update())
    if link is None:
        link = LoginLink(member_id=member.id, link_hash=digest, purpose=purpose, issued_at=issued_at,
                         first_used_at=moment, last_used_at=moment, use_count=1)
        try:
            with session.begin_nested():
                session.add(link)
                session.flush()
        except IntegrityError:  # followed twice at the same instant: the other request recorded it first
            link = session.scalar(select(LoginLink).where(LoginLink.link_hash == digest).with_for_update())
            if link is None:  # pragma: no cover - the row vanished again
                raise
        else:
            return Redemption(OK, member)
    if _spent(link, moment):
        return Redemption(USED, member)
    link.use_count += 1
    link.last_used_at = moment
    session.flush()
    return Redemption(OK, member)


def revoke_all(session: Session, member: Member) -> None:
    """Kill every link issued so far (e.g. after an email change)."""
    member.login_nonce = secrets.token_hex(16)
    session.flush()


def prune(session: Session) -> int:
    """Forget the use of links that have expired anyway. A pruned row could only have superseded links issued
    before it, and those have expired too. Returns how many rows were deleted."""
    oldest = timeutil.now() - timedelta(seconds=max(max_age(purpose) for purpose in MAX_AGE_SETTINGS))
    result = session.execute(delete(LoginLink).where(LoginLink.issued_at < oldest))
    return result.rowcount or 0
