"""Owner accounts and the admin's browser session (``session["owner_id"]``, separate from members').

Passwords are hashed with Werkzeug. After ``MAX_FAILED_ATTEMPTS`` wrong passwords in a row the account is
locked for ``LOCK_MINUTES``; a correct password during the lock is refused too.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app, g, redirect, request, session, url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

import timeutil
from admin.models import Owner
from errors import Conflict, CoursegateError, Unprocessable
from extensions import db
from membership.services import normalise_email

MAX_FAILED_ATTEMPTS = 5
LOCK_MINUTES = 15
MIN_PASSWORD_LENGTH = 10
SESSION_KEY = "owner_id"

# Checked against when the email is unknown, so a wrong email costs as much time as a wrong password.
_DUMMY_HASH = generate_password_hash("not-a-real-password")


class SignInFailed(CoursegateError):
    status = 401
    code = "sign_in_failed"
    message = "That email and password do not match an owner account."


class AccountLocked(CoursegateError):
    status = 429
    code = "account_locked"
    message = "Too many failed sign-ins: this account is locked for a while. Try again later."


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
    owner.password_hash = _hash_password(password)
    owner.failed_attempts = 0
    owner.locked_until = None
    session.flush()


def authenticate(session: Session, email: str, password: str) -> Owner:
    """The owner with this email and password, or ``SignInFailed``/``AccountLocked``.

    Flushes the failure count even when it raises: the caller commits in both cases.
    """
    try:
        normalised = normalise_email(email)
    except CoursegateError:
        check_password_hash(_DUMMY_HASH, password)
        raise SignInFailed() from None
    owner = session.scalar(select(Owner).where(Owner.email == normalised))
    if owner is None:
        check_password_hash(_DUMMY_HASH, password)
        raise SignInFailed()
    moment = timeutil.now()
    if owner.locked_until is not None and owner.locked_until > moment:
        raise AccountLocked()
    if not check_password_hash(owner.password_hash, password):
        if owner.locked_until is not None:  # a lock that ran out: start counting afresh
            owner.failed_attempts = 0
            owner.locked_until = None
        owner.failed_attempts += 1
        if owner.failed_attempts >= MAX_FAILED_ATTEMPTS:
            owner.locked_until = moment + timedelta(minutes=LOCK_MINUTES)
            session.flush()
            current_app.logger.warning("owner %s locked after %s failed sign-ins", owner.id, owner.failed_attempts)
            raise AccountLocked()
        session.flush()
        raise SignInFailed()
    owner.failed_attempts = 0
    owner.locked_until = None
    owner.last_login_at = moment
    session.flush()
    return owner


def sign_in(owner: Owner) -> None:
    # A fresh session for the owner: drop anything an attacker may have planted before sign-in.
    session.pop(SESSION_KEY, None)
    session[SESSION_KEY] = owner.id
    session.permanent = False


def sign_out() -> None:
    session.pop(SESSION_KEY, None)


def current_owner() -> Owner | None:
    owner_id = session.get(SESSION_KEY)
    if owner_id is None:
        return None
    return db.session.get(Owner, owner_id)


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

