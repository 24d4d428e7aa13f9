"""Owner API keys: ``Authorization: Bearer <key>``; only a SHA-256 of each key is stored."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets

from flask import current_app, g, redirect, request, session, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

import timeutil
from errors import Unauthorized
from extensions import db
from membership import login_links
from membership.models import ApiKey, Member

KEY_PREFIX = "cg_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, name: str) -> tuple[ApiKey, str]:
    """Returns the row and the key itself, which is shown once and never stored."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    row = ApiKey(name=name.strip() or "key", prefix=key[:10], key_hash=hash_key(key))
    session.add(row)
    session.flush()
    return row, key


def bearer_key() -> str:
    """The key in ``Authorization: Bearer <key>`` (401 ``unauthorized`` without one)."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized()
    return key.strip()


def invalid_key() -> Unauthorized:
    return Unauthorized(code="invalid_api_key", message="That API key is not valid or has been revoked.")


def key_from_request() -> ApiKey:
    digest = hash_key(bearer_key())
    row = db.session.scalar(select(ApiKey).where(ApiKey.key_hash == digest, ApiKey.revoked_at.is_(None)))
    # The lookup is by hash, so timing says nothing about the key; compare anyway to be explicit.
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        raise invalid_key()
    return row


def require_owner() -> None:
    """``before_request`` hook for the owner API blueprints."""
    g.api_key = key_from_request()


def owner_required(view):
    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        g.api_key = key_from_request()
        return view(*args, **kwargs)

    return wrapper


def touch_last_used(row: ApiKey) -> None:
    row.last_used_at = timeutil.now()


MEMBER_KEY = "member_id"
GENERATION_KEY = "member_generation"
SINCE_KEY = "member_since"  # when this browser signed in (Unix seconds): the session's lifetime counts from it


def current_member() -> Member | None:
    """The member signed in on this browser session, if any, and only while that sign-in still stands: not
    after the member signed out or changed their password anywhere (``Member.session_generation``), nor
    ``MEMBER_SESSION_DAYS`` after signing in. A cookie copied before either keeps nothing open."""
    member_id = session.get(MEMBER_KEY)
    if member_id is None:
        return None
    member = db.session.get(Member, member_id)
    if member is None or not _still_signed_in(member):
        for key in (MEMBER_KEY, GENERATION_KEY, SINCE_KEY):
            session.pop(key, None)
        return None
    return member


def _still_signed_in(member: Member) -> bool:
    # A session from before generations were kept has none: it counts as generation 0, the first.
    if session.get(GENERATION_KEY, 0) != member.session_generation:
        return False
    now = int(timeutil.now().timestamp())
    since = session.get(SINCE_KEY)
    if not isinstance(since, int):  # likewise from before lifetimes were kept: its lifetime starts now
        session[SINCE_KEY] = since = now
    return now - since < int(current_app.config["MEMBER_SESSION_DAYS"]) * 86400


def sign_in(member: Member) -> None:
    """Start a fresh browser session for ``member`` (the old session's contents are dropped)."""
    session.clear()
    session[MEMBER_KEY] = member.id
    session[GENERATION_KEY] = member.session_generation
    session[SINCE_KEY] = int(timeutil.now().timestamp())
    session.permanent = True


def end_sessions(member: Member) -> None:
    """End every session ``member`` has signed in, on every browser. Flushes nothing; the caller commits."""
    member.session_generation += 1


def sign_out() -> None:
    """Sign out here and everywhere else: every copy of the session cookie stops working, and so do the login
    links already sent (one followed again from this browser's history must not sign back in)."""
    member = current_member()
    if member is not None:
        end_sessions(member)
        login_links.revoke_all(db.session, member)
    session.clear()


def member_required(view):
    """Member pages: send anyone not signed in to /login."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        member = current_member()
        if member is None:
            return redirect(url_for("member_pages.login"))
        g.member = member
        return view(*args, **kwargs)

    return wrapper
