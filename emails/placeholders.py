"""Owner-edited email text: ``{placeholder}`` substitution, never Jinja.

The owner writes plain text with ``{name}`` fields (``{{`` and ``}}`` for literal braces). Only bare
names declared for that email are allowed: no attribute access, indexing, conversions or format specs,
so owner text can never reach into objects or run template code. Values are escaped in the HTML part.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field

from markupsafe import Markup, escape

_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")


class PlaceholderSyntaxError(ValueError):
    pass


@dataclass(frozen=True)
class Link:
    """A titled link in an email's context (a course on the owner's site). Templates show the title as a
    link; owner text's ``{placeholder}`` shows "title: url" (or the title alone when there is no url)."""

    title: str
    url: str | None = None

    def __str__(self) -> str:
        return f"{self.title}: {self.url}" if self.url else self.title


@dataclass
class Problems:
    syntax: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.syntax or self.unknown or self.missing)


def _parse(text: str) -> list[tuple[str, str | None]]:
    """``[(literal, field_name_or_None), ...]``; raises :class:`PlaceholderSyntaxError`."""
    try:
        parts = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise PlaceholderSyntaxError(f"{exc} (write {{{{ or }}}} for a literal brace)") from None
    out = []
    for literal, name, spec, conversion in parts:
        if name is not None:
            if spec or conversion or not _NAME.match(name):
                shown = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
                raise PlaceholderSyntaxError(f"{{{shown}}} is not a placeholder: use a plain name such as "
                                             "{member_name}")
        out.append((literal, name))
    return out


def names(text: str) -> set[str]:
    return {name for _, name in _parse(text) if name is not None}


def check(text: str, allowed: set[str] | frozenset[str], required: set[str] | frozenset[str] = frozenset()) -> Problems:
    problems = Problems()
    try:
        used = names(text)
    except PlaceholderSyntaxError as exc:
        problems.syntax.append(str(exc))
        return problems
    problems.unknown = sorted(used - set(allowed))
    problems.missing = sorted(set(required) - used)
    return problems


def substitute(text: str, values: dict[str, str]) -> str:
    """Plain text: placeholders replaced by their values."""
    return "".join(literal + (values[name] if name is not None else "") for literal, name in _parse(text))


def to_html(text: str, values: dict[str, str], links: set[str] | frozenset[str] = frozenset()) -> Markup:
    """HTML paragraphs: everything escaped; a blank line starts a paragraph; placeholders in ``links`` (URLs)
    become links."""
    pieces: list[str] = []
    for literal, name in _parse(text):
        pieces.append(str(escape(literal)))
        if name is None:
            continue
        value = values[name]
        if name in links and value.startswith(("https://", "http://")):
            pieces.append(f'<a href="{escape(value)}">{escape(value)}</a>')
        else:
            pieces.append(str(escape(value)))
    joined = "".join(pieces).replace("\r\n", "\n").strip()
    paragraphs = [p.strip().replace("\n", "<br>\n") for p in re.split(r"\n\s*\n", joined) if p.strip()]
    return Markup("\n".join(f"<p>{p}</p>" for p in paragraphs))
