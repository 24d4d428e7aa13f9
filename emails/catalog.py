"""Every email the service sends: its template and the context it needs.

Adding an email means adding an entry here plus ``templates/emails/<name>.txt`` and ``.html``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EmailKind:
    name: str
    subject: str  # a {placeholder} template, like the owner overrides
    required: frozenset[str]  # context keys the caller must provide
    description: str


CATALOG: dict[str, EmailKind] = {}


def register(name: str, subject: str, required: set[str], description: str) -> EmailKind:
    kind = EmailKind(name, subject, frozenset(required), description)
    CATALOG[name] = kind
    return kind


register(
    "welcome",
    "Welcome to {site_name}: your login link",
    {"member_name", "login_url", "levels"},
    "Sent once to a member the service has just created, with a one-click login link.",
)
register(
    "login_link",
    "Your login link for {site_name}",
    {"member_name", "login_url"},
    "Sent when a member asks for a login link on /login.",
)
register(
    "payment_failed",
    "Action needed: your payment for {site_name} did not go through",
    {"member_name", "card_update_url", "grace_days", "levels"},
    "Sent when a cart reports a failed rebill: asks the member to update their card.",
)


def get(name: str) -> EmailKind:
    try:
        return CATALOG[name]
    except KeyError:
        raise LookupError(f"unknown email template {name!r}") from None
register(
    "automation_message",
    "{message_subject}",
    {"message_subject", "message_body"},
    "Sent by an automation rule: the owner writes the subject and body with {placeholders}.",
)
