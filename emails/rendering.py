"""Render an email from ``templates/emails/<name>.{txt,html}`` inside the shared layout."""

from __future__ import annotations

from flask import current_app, render_template

from emails import catalog


def render(name: str, context: dict) -> tuple[str, str, str]:
    """Return ``(subject, text, html)``. Raises ``LookupError``/``KeyError`` for unknown names or missing keys."""
    kind = catalog.get(name)
    missing = kind.required - context.keys()
    if missing:
        raise KeyError(f"email {name!r} is missing context: {', '.join(sorted(missing))}")
    full = {"site_name": current_app.config["SITE_NAME"], "site_url": current_app.config["SITE_URL"], **context}
    subject = kind.subject.format_map(_Strict(full))
    text = render_template(f"emails/{name}.txt", **full).strip() + "\n"
    html = render_template(f"emails/{name}.html", subject=subject, **full)
    return subject, text, html


class _Strict(dict):
    def __missing__(self, key: str) -> str:
        raise KeyError(f"unknown placeholder {{{key}}}")
