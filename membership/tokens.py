"""Signed, expiring tokens: one serializer per purpose, each with its own salt.

Keys are ``[*SECRET_KEY_FALLBACKS, SECRET_KEY]`` with the current key last, so links issued before a
key rotation keep working until they expire while new ones are signed with the new key.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer

import timeutil

LOGIN_LINK = "coursegate.login-link"


@dataclass(frozen=True)
class TokenCheck:
    status: str  # "ok" | "expired" | "invalid"
    payload: Any = None


class ClockSigner(TimestampSigner):
    """Timestamps from :func:`timeutil.now`, so tests (and a frozen clock) see the same time as the service."""

    def get_timestamp(self) -> int:
        return int(timeutil.now().timestamp())


def serializer(salt: str) -> URLSafeTimedSerializer:
    config = current_app.config
    keys = [*config.get("SECRET_KEY_FALLBACKS", []), config["SECRET_KEY"]]
    return URLSafeTimedSerializer(keys, salt=salt, signer=ClockSigner)


def sign(salt: str, payload: Any) -> str:
    return serializer(salt).dumps(payload)


def check(salt: str, token: str, max_age: int) -> TokenCheck:
    try:
        return TokenCheck("ok", serializer(salt).loads(token, max_age=max_age))
    except SignatureExpired:
        return TokenCheck("expired")
    except BadSignature:
        return TokenCheck("invalid")
