"""Links that are credentials never rest in the outbox: they are made when the message leaves.

A login link signs its holder in; an invoice link opens an invoice without signing in. A domain that puts
such links in its emails registers a :class:`Credential`: the URL's shape, how to read from a link what it is
for, and how to make a fresh one. Then:

- when an email is stored (:func:`scrub`), each such link in its subject, text and HTML becomes a marker naming
  what it is for, ``[link made when sent: login/42/welcome #<signature>]``: the outbox, a database dump and the
  admin hold no token that works;
- when it is delivered (:func:`fill`), each marker becomes a newly made link, in memory only, just before the
  SMTP or file transport; a retry makes another. A link's validity therefore counts from the delivery that
  carried it (a welcome link works 7 days from when it was sent, however long the email waited).

The marker's signature (``SECRET_KEY``, with ``SECRET_KEY_FALLBACKS``) covers the recipient, so text that
reaches someone else with a marker copied into it (a buyer's name, say) makes no link: forged or moved
markers stay as they are.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app
from itsdangerous import Signer
from sqlalchemy.orm import Session

MARKER_SALT = "coursegate.email-link-marker"
_MARKER = re.compile(r"\[link made when sent: ([a-z_]+(?:/[A-Za-z0-9_\-]+)*) #([A-Za-z0-9_\-]+)\]")
TOKEN = r"(?P<token>[A-Za-z0-9_.\-]+)"  # what an itsdangerous token is made of


class LinkUnavailable(Exception):
    """No fresh link can be made for this email (its member is gone, or no longer at this address)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Credential:
    name: str  # [a-z_]+, the marker's first word
    path: str  # a regex for the URL after SITE_URL, with the group ``token`` (see TOKEN)
    read: Callable[[re.Match], "tuple[str, ...] | None"]  # a genuine link -> what to make afresh; else None
    make: Callable[[Session, tuple[str, ...], str], str]  # (session, what, recipient) -> URL, or LinkUnavailable


_CREDENTIALS: dict[str, Credential] = {}


def register(credential: Credential) -> Credential:
    _CREDENTIALS[credential.name] = credential
    return credential


def _signer() -> Signer:
    config = current_app.config
    return _signer_for(tuple(config.get("SECRET_KEY_FALLBACKS", [])), config["SECRET_KEY"])


@functools.lru_cache(maxsize=8)
def _signer_for(fallbacks: tuple[str, ...], secret_key: str) -> Signer:
    return Signer([*fallbacks, secret_key], salt=MARKER_SALT, digest_method=hashlib.sha256)


def _signed(recipient: str, spec: str) -> bytes:
    return f"{recipient.strip().lower()}\n{spec}".encode()


@functools.lru_cache(maxsize=64)
def _pattern(site: str, path: str) -> re.Pattern:
    return re.compile(re.escape(site) + path)


def scrub(text: str, recipient: str) -> str:
    """``text`` with every genuine credential link replaced by its marker (bound to ``recipient``)."""
    return scrub_parts((text,), recipient)[0]


def scrub_parts(texts: tuple[str, ...], recipient: str) -> tuple[str, ...]:
    """:func:`scrub` of each of one email's parts (subject, text, HTML): a link found in several parts is read
    and signed once."""
    site = current_app.config["SITE_URL"]
    signer = _signer()
    markers: dict[str, str] = {}
    for credential in _CREDENTIALS.values():
        def marker(match: re.Match, credential: Credential = credential) -> str:
            link = match.group(0)
            if link not in markers:
                what = credential.read(match)
                if what is None:  # not a link that works: nothing to protect, nothing to make again
                    markers[link] = link
                else:
                    spec = "/".join((credential.name, *what))
                    signature = signer.get_signature(_signed(recipient, spec)).decode()
                    markers[link] = f"[link made when sent: {spec} #{signature}]"
            return markers[link]

        pattern = _pattern(site, credential.path)
        texts = tuple(pattern.sub(marker, text) for text in texts)
    return texts


def shown(text: str) -> str:
    """``text`` as the owner sees it (API, admin): each marker as what it stands for, without its signature."""
    return _MARKER.sub(lambda match: f"[{match.group(1).split('/')[0]} link, made when sent]", text)


def fill(session: Session, texts: tuple[str, ...], recipient: str) -> tuple[str, ...]:
    """``texts`` (subject, text, HTML) with each marker bound to ``recipient`` replaced by a fresh link; the same
    marker gets the same link in every part. Raises :class:`LinkUnavailable`."""
    made: dict[str, str] = {}
    signer = _signer()

    def link(match: re.Match) -> str:
        spec, signature = match.group(1), match.group(2)
        if spec not in made:
            name, *what = spec.split("/")
            credential = _CREDENTIALS.get(name)
            if credential is None or not signer.verify_signature(_signed(recipient, spec), signature.encode()):
                return match.group(0)
            made[spec] = credential.make(session, tuple(what), recipient)
        return made[spec]

    return tuple(_MARKER.sub(link, text) for text in texts)
