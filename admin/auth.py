"""Owner accounts and the admin's browser session (``session["owner_id"]``, separate from members').

Passwords are hashed with Werkzeug. Wrong passwords are counted per (account, client address)
(``admin/lockout.py``): a client that gets them wrong too often waits, nobody else does.
"""

from __future__ import annotations

import math

from flask import current_app, g, redirect, request, session, url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

import timeutil
from admin import lockout
from admin.models import Owner
from errors import Conflict, CoursegateError, Unprocessable
from extensions import db
from membership.services import normalise_email

MIN_PASSWORD_LENGTH = 10
SESSION_KEY = "owner_id"
GENERATION_KEY = "owner_generation"  # the owner's session_generation when this session signed in

# Checked against when the email is unknown, so a wrong email costs as much time as a wrong password.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


class SignInFailed(CoursegateError):
    status = 401
    code = "sign_in_failed"
    message = "That email and password do not match an owner account."


class SignInPaused(CoursegateError):
    """Too many wrong passwords for one account from one client address: that client waits (others do not)."""

    status = 429
    code = "sign_in_paused"

    def __init__(self, seconds: int):
        self.seconds = seconds
        minutes = max(1, math.ceil(seconds / 60))
        when = "1 minute" if minutes == 1 else f"{minutes} minutes"
        super().__init__(
            f"Too many wrong passwords from your network address: sign-in here is locked for {when}. "
            "Signing in from elsewhere is not affected. Someone with access to the server can lift it at once "
            "by setting a new password: flask --app app owners set-password <your email>.")


class DuplicateOwner(Conflict):
    code = "duplicate_owner"
    message = "An owner with that email already exists."


def _hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise Unprocessable(f"The password must be at least {MIN_PASSWORD_LENGTH} characters long.",
                            code="weak_password")
    return generate_password_hash(password)


def create_owner(session: Session, email: str, password: str) -> Owner:
    owner = Owner(email=normalise_email(email), password_hash=_hash_password(password))
    try:
        with session.begin_nested():
            session.add(owner)
            session.flush()
    except IntegrityError:
        raise DuplicateOwner() from None
    return owner


def set_password(session: Session, owner: Owner, password: str) -> None:
    """A new password (which lifts a lockout) ends every session signed in with the old one."""
    owner.password_hash = _hash_password(password)
    owner.failed_attempts = 0
    owner.locked_until = None
    end_sessions(session, owner)


def end_sessions(session: Session, owner: Owner) -> None:
    """Sign ``owner`` out everywhere: every session signed in so far, and every copy of its cookie, stops
    working. Flushes; the caller commits."""
    owner.session_generation += 1
    session.flush()


def authenticate(session: Session, email: str, password: str, client: str = "") -> Owner:
    """The owner with this email and password, or ``SignInFailed``/``SignInPaused``.

    ``client`` is the request's address: wrong passwords pause that client for that account only. Unknown
    emails are counted alike, so the pause tells no one which emails are owners.
    """
    try:
        normalised = normalise_email(email)
    except CoursegateError:
        normalised = (email or "").strip().lower()[:320]
    owner = session.scalar(select(Owner).where(Owner.email == normalised)) if "@" in normalised else None
    password_hash = owner.password_hash if owner is not None else None
    paused = lockout.seconds_paused(normalised, password_hash, client)
    if paused is not None:
        raise SignInPaused(paused)
    if owner is None or not check_password_hash(owner.password_hash, password):
        if owner is None:  # a wrong email costs as much time as a wrong password
            check_password_hash(_DUMMY_HASH, password)
        paused = lockout.record_failure(normalised, password_hash, client)
        if paused is not None:
            if owner is not None:
                current_app.logger.warning("owner %s: sign-in paused for one client after wrong passwords", owner.id)
            raise SignInPaused(paused)
        raise SignInFailed()
    lockout.forget_failures(normalised, password_hash, client)
    owner.failed_attempts = 0  # clears what an earlier release's whole-account lock left
    owner.locked_until = None
    owner.last_login_at = timeutil.now()
    session.flush()
    return owner


def sign_in(owner: Owner) -> None:
    # A fresh session for the owner: drop anything an attacker may have planted before sign-in.
    session.pop(SESSION_KEY, None)
    session[SESSION_KEY] = owner.id
    session[GENERATION_KEY] = owner.session_generation
    session.permanent = False


def sign_out() -> None:
    """Sign out here and on every other browser (a copied cookie would otherwise still open the admin)."""
    owner = current_owner()
    if owner is not None:
        end_sessions(db.session, owner)
    session.pop(SESSION_KEY, None)
    session.pop(GENERATION_KEY, None)


def current_owner() -> Owner | None:
    owner_id = session.get(SESSION_KEY)
    if owner_id is None:
        return None
    owner = db.session.get(Owner, owner_id)
    # A session from before generations were kept has none: it counts as generation 0, the first.
    if owner is None or session.get(GENERATION_KEY, 0) != owner.session_generation:
        session.pop(SESSION_KEY, None)
        session.pop(GENERATION_KEY, None)
        return None
    return owner


PUBLIC_ENDPOINTS = {"admin.login", "admin.static"}


def require_owner():
    """``before_request`` for the admin blueprint: anyone but a signed-in owner goes to the sign-in page."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    owner = current_owner()
    if owner is None:
        session.pop(SESSION_KEY, None)
        target = request.full_path if request.method == "GET" else None
        return redirect(url_for("admin.login", next=target.rstrip("?") if target else None))
    g.owner = owner
    return None

