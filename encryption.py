"""Secrets at rest: the columns that let someone act as a cart or as the site are stored encrypted.

Integration secrets (current and previous), Stripe API keys and outgoing-webhook signing secrets are
:class:`EncryptedText` columns: Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``) under a key derived
with HKDF from ``SECRET_KEY``, so a database dump alone cannot forge a delivery or call Stripe. Values decrypt
with ``SECRET_KEY`` or any of ``SECRET_KEY_FALLBACKS`` and are always written with ``SECRET_KEY``;
``flask --app app secrets rotate`` rewrites every stored value under the current key (run it after a key
rotation, before dropping the old key from the fallbacks).
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Iterable, Mapping

import click
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy import Text, TypeDecorator, select, update

from errors import CoursegateError
from extensions import db

# A fixed context: the same SECRET_KEY also signs sessions and links, and HKDF keeps those keys apart.
_INFO = b"coursegate: secrets at rest (fernet) v1"


class SecretsUnreadable(CoursegateError):
    status = 503
    code = "secrets_unreadable"
    message = ("A stored secret cannot be decrypted: SECRET_KEY changed without the old key in "
               "SECRET_KEY_FALLBACKS. Put it back there (then run `flask secrets rotate`).")


def _fernet(secret_key: str) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(secret_key.encode())
    return Fernet(base64.urlsafe_b64encode(key))


@functools.lru_cache(maxsize=16)
def _box(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([_fernet(key) for key in keys])


def box(config: Mapping | None = None) -> MultiFernet:
    """Encrypts with ``SECRET_KEY``; decrypts with it or any fallback."""
    config = current_app.config if config is None else config
    return _box((config["SECRET_KEY"], *config.get("SECRET_KEY_FALLBACKS", ())))


def encrypt(value: str, config: Mapping | None = None) -> str:
    return box(config).encrypt(value.encode()).decode("ascii")


def decrypt(token: str, config: Mapping | None = None) -> str:
    try:
        return box(config).decrypt(token.encode("ascii")).decode()
    except (InvalidToken, UnicodeEncodeError):
        raise SecretsUnreadable() from None


def is_encrypted(value: str, config: Mapping | None = None) -> bool:
    try:
        decrypt(value, config)
    except SecretsUnreadable:
        return False
    return True


class EncryptedText(TypeDecorator):
    """A ``str`` column stored as a Fernet token. Never compare it in SQL: every encryption differs."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else encrypt(value)

    def process_result_value(self, value, dialect):
        return None if value is None else decrypt(value)


def encrypted_columns(metadata) -> Iterable:
    for table in metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, EncryptedText):
                yield table, column


def rotate(session, metadata) -> int:
    """Rewrite every stored secret under the current ``SECRET_KEY`` (read with any key, written with the
    current one); returns how many values were rewritten. Safe to run again. Flushes, never commits."""
    count = 0
    for table, column in encrypted_columns(metadata):
        primary = list(table.primary_key.columns)
        for *keys, value in session.execute(select(*primary, column).where(column.isnot(None))).all():
            session.execute(update(table).where(*[c == k for c, k in zip(primary, keys)]).values({column: value}))
            count += 1
    session.flush()
    return count


secrets_cli = AppGroup("secrets", help="Secrets stored encrypted (integration secrets, API keys).")


@secrets_cli.command("rotate")
def rotate_command() -> None:
    """Re-encrypt every stored secret with the current SECRET_KEY (after moving the old key to
    SECRET_KEY_FALLBACKS); then the old key can be dropped."""
    try:
        count = rotate(db.session, db.metadata)
    except SecretsUnreadable as error:
        db.session.rollback()
        raise click.ClickException(error.message) from None
    db.session.commit()
    click.echo(f"Re-encrypted {count} stored secret(s) with the current SECRET_KEY.")
