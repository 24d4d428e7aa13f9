"""Owner-written text with ``{placeholders}``: validated when saved, substituted when sent. Never Jinja.

``{{`` and ``}}`` stand for literal braces. Values are plain text; the HTML template escapes them.
"""

from __future__ import annotations

import re

# What an automation email may say about the member and the event.
ALLOWED = {
    "member_name": "the member's name (or 'there')",
    "member_email": "the member's email address",
    "site_name": "the site's name",
    "site_url": "the site's address",
    "login_url": "a one-click login link for the member",
    "tag": "the tag of a tag_added / tag_removed event",
    "level": "the name of the event's access level",
    "product_id": "the cart product id of the event",
}

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


def problems(text: str) -> list[str]:
    found: list[str] = []
    for match in _TOKEN.finditer(text):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        name = match.group(1)
        if name is None:
            found.append(f"A lone '{token}': write '{token * 2}' for a literal brace.")
        elif name not in ALLOWED:
            found.append(f"Unknown placeholder {{{name}}}; use one of: "
                         + ", ".join(f"{{{n}}}" for n in sorted(ALLOWED)) + ".")
    return found


def used(text: str) -> set[str]:
    return {m.group(1) for m in _TOKEN.finditer(text) if m.group(1) in ALLOWED}


def substitute(text: str, values: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name = match.group(1)
        if name is None or name not in ALLOWED:  # validated on save; never reached for stored rules
            raise ValueError(f"bad placeholder {token!r}")
        return str(values.get(name, ""))

    return _TOKEN.sub(replace, text)
