"""Text from carts made storable: what a database column cannot hold never reaches one.

PostgreSQL refuses NUL in text ("cannot contain NUL (0x00) characters") and neither database can encode a lone
surrogate (JSON's ``"\\ud800"``), so a name like ``a\\x00b`` used to fail the whole delivery, and every replay of
it. Cleaning runs on the decoded payload (so live deliveries and replays of stored ones read the same values)
and on the text that is stored.
"""

from __future__ import annotations

import functools
import json
import re
from typing import NamedTuple
from urllib.parse import unquote, urlencode

# NUL is dropped; a lone surrogate becomes U+FFFD, as a decoder does with a byte it cannot read.
_NUL = "\x00"
_SURROGATES = re.compile("[\ud800-\udfff]")


def text(value: str) -> str:
    if _NUL in value:
        value = value.replace(_NUL, "")
    if _SURROGATES.search(value):
        value = _SURROGATES.sub("\ufffd", value)
    return value


def tree(node):
    """A decoded payload (dicts, lists, strings, numbers) with every string, keys included, cleaned."""
    if isinstance(node, str):
        return text(node)
    if isinstance(node, dict):
        return {text(k) if isinstance(k, str) else k: tree(v) for k, v in node.items()}
    if isinstance(node, list):
        return [tree(v) for v in node]
    return node


def pairs(items: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(text(name), text(value)) for name, value in items]


# --- form bodies, read once --------------------------------------------------------------------------------

class FormPair(NamedTuple):
    sent: str  # ``name=value`` as it came, still encoded
    name: str
    value: str


def form_pairs(body: str, *, max_fields: int | None = None) -> list[FormPair]:
    """A form body's pairs as ``urllib.parse.parse_qsl(body, keep_blank_values=True)`` reads them (``+`` is a
    space, a name without ``=`` has the value ``""``, empty pieces are skipped), each with the text it was sent
    as: a receiver reads the form once, for its fields and for the copy it stores. Raises ``ValueError`` past
    ``max_fields``."""
    if max_fields is not None and body.count("&") + 1 > max_fields:
        raise ValueError("Max number of fields exceeded")
    found = []
    for sent in body.split("&"):
        if sent:
            name, _, value = sent.partition("=")
            found.append(FormPair(sent, _name(name), _unquote(value)))
    return found


@functools.lru_cache(maxsize=4096)
def _name(part: str) -> str:
    # A cart sends the same few hundred names (``customer%5Bemail%5D``) every time.
    return _unquote(part)


def _unquote(part: str) -> str:
    if "+" in part:
        part = part.replace("+", " ")
    return unquote(part) if "%" in part else part


# --- secrets, removed by value -------------------------------------------------------------------------

REDACTED = "[redacted]"


def _redact(value: str, secrets: list[str]) -> str:
    for secret in secrets:
        if secret and secret in value:
            value = value.replace(secret, REDACTED)
    return value


def _redact_tree(node, secrets: list[str]):
    if isinstance(node, str):
        return _redact(node, secrets)
    if isinstance(node, dict):
        return {_redact(k, secrets) if isinstance(k, str) else k: _redact_tree(v, secrets) for k, v in node.items()}
    if isinstance(node, list):
        return [_redact_tree(v, secrets) for v in node]
    return node


def without_secrets(body: str, content_type: str, secrets: list[str], *, drop: str | None = None) -> str:
    """The body to store: every value that holds one of ``secrets`` redacted, and the pair named ``drop``
    (``thrivecart_secret``) left out, matched on the decoded text so no encoding of the name or the value
    (``thrivecart%5Fsecret``, ``\\u0054ESTSECRET``) slips through. A body without either is kept as sent."""
    stripped = body.strip()
    if "json" in content_type.lower() or stripped.startswith("{"):
        try:
            tree = json.loads(stripped)
        except ValueError:
            return text(_redact(body, secrets))
        redacted = _redact_tree(tree, secrets)
        if isinstance(redacted, dict) and drop is not None:
            redacted.pop(drop, None)
        if redacted == tree and not any(s and s in body for s in secrets):
            return text(body)
        return json.dumps(redacted)
    return form_without_secrets(body, form_pairs(body), secrets, drop=drop)


def form_without_secrets(body: str, form: list[FormPair], secrets: list[str], *, drop: str | None = None) -> str:
    """:func:`without_secrets` for a form already read into ``form`` (:func:`form_pairs` of ``body``): the pairs
    kept as they were sent, unless a secret had to be redacted from one (then the form is encoded anew)."""
    kept = [pair for pair in form if pair.name != drop]
    redacted = [(_redact(pair.name, secrets), _redact(pair.value, secrets)) for pair in kept]
    if any((name, value) != (pair.name, pair.value) or any(s and s in pair.sent for s in secrets)
           for (name, value), pair in zip(redacted, kept)):
        return text(urlencode(redacted))
    if len(kept) == len(form):
        return text(body)
    return text("&".join(pair.sent for pair in kept))


def headers_without_secrets(headers: dict[str, str], secrets: list[str]) -> dict[str, str]:
    return {text(name): text(_redact(value, secrets)) for name, value in headers.items()}
