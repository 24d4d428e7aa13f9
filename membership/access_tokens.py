"""Member access tokens: a short-lived signed statement of what the signed-in member may open, which a front end
checks on its own (with the public key published at ``/.well-known/jwks.json``) instead of asking
``GET /api/v1/access`` on every page view.

A token is a JWT signed with an asymmetric key (Ed25519 by default; RSA and EC keys work too), valid for
``MEMBER_TOKEN_MAX_AGE`` seconds (5 minutes) or until the first of the member's levels ends, whichever comes
first. Its claims: ``iss`` (SITE_URL), ``aud`` (:data:`AUDIENCE`), ``sub`` (the member id), ``email``,
``levels`` and ``courses`` (slugs), ``iat``, ``exp``, ``jti``. The trade-off: a revocation shows in the next
token, so a front end that trusts a token already issued may show access for up to its lifetime after the
revocation; ``GET /api/v1/access`` answers from the database every time.

Keys: ``MEMBER_TOKEN_KEY`` (PEM, or the path of a PEM file) signs; ``MEMBER_TOKEN_KEY_FALLBACKS`` (former keys,
PEMs or paths, comma-separated; their public halves are enough) are still published, so tokens signed before a
rotation verify until they expire. Each key's ``kid`` is its RFC 7638 thumbprint. Without ``MEMBER_TOKEN_KEY``
(the embedded default) a key is generated once and kept in ``instance/member_token_key.pem``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from flask import Flask, current_app

import config
import timeutil
from membership.models import Member
from membership.queries import MemberAccess

AUDIENCE = "coursegate:member-access"
_EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
# RFC 7638: the members of a public JWK its thumbprint covers, by key type.
_THUMBPRINT_MEMBERS = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}
_PEM = re.compile(rb"-----BEGIN [A-Z ]+-----.+?-----END [A-Z ]+-----", re.S)


@dataclass(frozen=True)
class SigningKey:
    kid: str
    algorithm: str
    private: object | None  # None: a former key, published for verification only
    jwk: dict  # the public key as a JWK, with kid, alg and use


@dataclass(frozen=True)
class KeySet:
    current: SigningKey
    published: list[SigningKey]  # the current key first, then the former ones


def _algorithm(public_key) -> str:
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RS256"
    if isinstance(public_key, ec.EllipticCurvePublicKey) and public_key.curve.name in _EC_ALGORITHMS:
        return _EC_ALGORITHMS[public_key.curve.name]
    if isinstance(public_key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return "EdDSA"
    raise config.ConfigError("member token keys must be RSA, EC (P-256, P-384, P-521), Ed25519 or Ed448")


def _signing_key(pem: bytes, *, need_private: bool) -> SigningKey:
    try:
        private = serialization.load_pem_private_key(pem, password=None)
        public = private.public_key()
    except (ValueError, TypeError):
        if need_private:
            raise config.ConfigError("MEMBER_TOKEN_KEY must be an unencrypted private key in PEM") from None
        private = None
        try:
            public = serialization.load_pem_public_key(pem)
        except ValueError:
            raise config.ConfigError("MEMBER_TOKEN_KEY_FALLBACKS holds something that is not a PEM key") from None
    algorithm = _algorithm(public)
    jwk = jwt.get_algorithm_by_name(algorithm).to_jwk(public, as_dict=True)
    canonical = json.dumps({name: jwk[name] for name in _THUMBPRINT_MEMBERS[jwk["kty"]]}, separators=(",", ":"),
                           sort_keys=True)
    kid = base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()
    return SigningKey(kid=kid, algorithm=algorithm, private=private,
                      jwk={**jwk, "kid": kid, "alg": algorithm, "use": "sig"})


def _pems(value: str | bytes, *, several: bool) -> list[bytes]:
    """PEM blocks given inline, or read from the file(s) the value names (comma-separated when ``several``)."""
    raw = value.encode() if isinstance(value, str) else value
    if b"-----BEGIN" in raw:
        blocks = _PEM.findall(raw)
    else:
        paths = [p.strip() for p in raw.decode().split(",")] if several else [raw.decode().strip()]
        blocks = []
        for path in filter(None, paths):
            try:
                blocks += _PEM.findall(Path(path).read_bytes())
            except OSError as error:
                raise config.ConfigError(f"cannot read member token key file {path!r}: {error.strerror}") from None
    if not blocks and raw.strip():
        raise config.ConfigError("no PEM key found in the member token key setting")
    return blocks


def load_keys(app: Flask) -> KeySet:
    configured = app.config.get("MEMBER_TOKEN_KEY")
    pems = _pems(configured, several=False) if configured else [config.instance_signing_key(app.instance_path)]
    if len(pems) != 1:
        raise config.ConfigError("MEMBER_TOKEN_KEY must hold exactly one key")
    current = _signing_key(pems[0], need_private=True)
    published = [current]
    for pem in _pems(app.config.get("MEMBER_TOKEN_KEY_FALLBACKS") or "", several=True):
        former = _signing_key(pem, need_private=False)
        if former.kid not in {key.kid for key in published}:
            published.append(former)
    return KeySet(current=current, published=published)


def keys() -> KeySet:
    """The app's keys, read once (configuration does not change while it runs); generated on first use in the
    embedded default."""
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    found = app.extensions.get("coursegate_member_token_keys")
    if found is None:
        found = app.extensions["coursegate_member_token_keys"] = load_keys(app)
    return found


def max_age(app: Flask) -> int:
    value = app.config.get("MEMBER_TOKEN_MAX_AGE")
    if isinstance(value, str):
        value = config.parse_int("MEMBER_TOKEN_MAX_AGE", value)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise config.ConfigError(f"MEMBER_TOKEN_MAX_AGE must be a positive number of seconds, got {value!r}")
    return value


def init_app(app: Flask) -> None:
    """Refuse a bad setting at start, not at the first token: the lifetime, and a configured key."""
    max_age(app)
    if app.config.get("MEMBER_TOKEN_KEY"):
        app.extensions["coursegate_member_token_keys"] = load_keys(app)


@dataclass(frozen=True)
class IssuedToken:
    token: str
    expires_at: datetime
    expires_in: int  # seconds, exp - iat


def issue(member: Member, access: MemberAccess, moment: datetime | None = None) -> IssuedToken:
    moment = moment or timeutil.now()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    issued_at = int(moment.timestamp())
    expires = moment + timedelta(seconds=max_age(app))
    if access.until is not None and access.until < expires:
        expires = access.until
    expires_at = max(int(expires.timestamp()), issued_at + 1)
    key = keys().current
    claims = {"iss": app.config["SITE_URL"], "aud": AUDIENCE, "sub": str(member.id), "email": member.email,
              "levels": access.levels, "courses": access.courses, "iat": issued_at, "exp": expires_at,
              "jti": secrets.token_urlsafe(12)}
    token = jwt.encode(claims, key.private, algorithm=key.algorithm, headers={"kid": key.kid})
    return IssuedToken(token=token, expires_at=datetime.fromtimestamp(expires_at, tz=moment.tzinfo),
                       expires_in=expires_at - issued_at)


def jwks() -> dict:
    return {"keys": [key.jwk for key in keys().published]}
