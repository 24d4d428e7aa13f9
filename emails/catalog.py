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
    "invoice_issued",
    "Upcoming payment for {plan_name}: {amount} on {due_date}",
    {"member_name", "plan_name", "invoice_number", "amount", "due_date", "period", "invoice_url"},
    "Sent when a subscription's invoice is issued, ahead of the charge (billing).",
)
register(
    "payment_receipt",
    "Receipt for {plan_name}: {amount} paid",
    {"member_name", "plan_name", "invoice_number", "amount", "period", "invoice_url", "paid_date", "access_until"},
    "Sent when a subscription invoice is paid (billing).",
)
register(
    "invoice_payment_failed",
    "Action needed: your payment for {plan_name} did not go through",
    {"member_name", "plan_name", "invoice_number", "amount", "due_date", "period", "invoice_url", "grace_days",
     "reason"},
    "Sent when charging a subscription invoice fails, with a link to retry or use a new card (billing).",
)
register(
    "invoice_action_required",
    "Please confirm your payment for {plan_name}",
    {"member_name", "plan_name", "invoice_number", "amount", "due_date", "period", "invoice_url"},
    "Sent when the bank asks the customer to authenticate a subscription payment (billing).",
)
register(
    "subscription_unpaid",
    "Your subscription to {plan_name} has ended",
    {"member_name", "plan_name", "invoice_number", "amount", "due_date", "period", "invoice_url"},
    "Sent when retries run out and a subscription becomes unpaid (billing).",
)
register(
    "subscription_cancelled",
    "Your subscription to {plan_name} is cancelled",
    {"member_name", "plan_name", "reason", "amount", "interval", "access_until"},
    "Sent when a subscription is cancelled by the customer, the owner, or because its plan was deleted (billing).",
)
