"""Owner API keys: ``Authorization: Bearer <key>``; only a SHA-256 of each key is stored."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets

from flask import g, redirect, request, session, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

import timeutil
from errors import Unauthorized
from extensions import db
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


def current_member() -> Member | None:
    """The member signed in on this browser session (``session["member_id"]``), if any."""
    member_id = session.get("member_id")
    if member_id is None:
        return None
    return db.session.get(Member, member_id)


def sign_in(member: Member) -> None:
    """Start a fresh browser session for ``member`` (the old session's contents are dropped)."""
    session.clear()
    session["member_id"] = member.id
    session.permanent = True


def sign_out() -> None:
    session.clear()


def member_required(view):
    """Member pages: send anyone not signed in to /login."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        member = current_member()
        if member is None:
            session.pop("member_id", None)
            return redirect(url_for("member_pages.login"))
        g.member = member
        return view(*args, **kwargs)

    return wrapper
