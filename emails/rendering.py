"""Render an email from ``templates/emails/<name>.{txt,html}`` inside the shared layout.

When the owner has overridden the subject or body text (``EmailTemplateOverride``), that text is
filled in with :mod:`emails.placeholders` (never rendered as Jinja) and placed in the same layout;
its values are escaped in the HTML part.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flask import current_app, render_template

from emails import catalog, placeholders

if TYPE_CHECKING:
    from emails.models import EmailTemplateOverride

SUBJECT_MAX = 300


def placeholder_values(full: dict) -> dict[str, str]:
    """Context values as the text an owner's ``{placeholder}`` stands for."""
    values = {}
    for key, value in full.items():
        if isinstance(value, (list, tuple)):
            value = ", ".join(str(item) for item in value)
        values[key] = "" if value is None else str(value)
    return values


def render(name: str, context: dict, override: EmailTemplateOverride | None = None) -> tuple[str, str, str]:
    """Return ``(subject, text, html)``. Raises ``LookupError``/``KeyError`` for unknown names or missing keys."""
    kind = catalog.get(name)
    missing = kind.required - context.keys()
    if missing:
        raise KeyError(f"email {name!r} is missing context: {', '.join(sorted(missing))}")
    full = {"site_name": current_app.config["SITE_NAME"], "site_url": current_app.config["SITE_URL"],
            **dict.fromkeys(kind.optional, ()), **context}
    values = placeholder_values(full)
    subject_text = override.subject if override is not None and override.subject else kind.subject
    # One line, however a member's name was typed into a cart.
    subject = " ".join(placeholders.substitute(subject_text, values).split())[:SUBJECT_MAX]
    if override is not None and override.body:
        body = placeholders.substitute(override.body, values).strip()
        text = render_template("emails/_owner.txt", body=body, **full).strip() + "\n"
        html = render_template("emails/_owner.html", subject=subject, **full,
                               body_html=placeholders.to_html(override.body, values, kind.links))
        return subject, text, html
    text = render_template(f"emails/{name}.txt", **full).strip() + "\n"
    html = render_template(f"emails/{name}.html", subject=subject, **full)
    return subject, text, html
