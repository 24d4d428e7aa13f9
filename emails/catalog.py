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
    body_required: frozenset[str] = frozenset()  # placeholders an owner's body text must keep
    links: frozenset[str] = frozenset()  # placeholders holding URLs (linked in the HTML part)
    optional: frozenset[str] = frozenset()  # context keys a caller may leave out (rendered as an empty list)

    @property
    def placeholders(self) -> frozenset[str]:
        """What owner-edited subject and body text may use."""
        return self.required | self.optional | GLOBAL_PLACEHOLDERS


CATALOG: dict[str, EmailKind] = {}
GLOBAL_PLACEHOLDERS = frozenset({"site_name", "site_url"})  # from configuration, in every email


def register(name: str, subject: str, required: set[str], description: str, *, body_required: set[str] = frozenset(),
             links: set[str] = frozenset(), optional: set[str] = frozenset()) -> EmailKind:
    kind = EmailKind(name, subject, frozenset(required), description, frozenset(body_required), frozenset(links),
                     frozenset(optional))
    CATALOG[name] = kind
    return kind


register(
    "welcome",
    "Welcome to {site_name}: your login link",
    {"member_name", "login_url", "levels"},
    "Sent once to a member the service has just created, with a one-click login link and their courses.",
    body_required={"login_url"},
    links={"login_url"},
    optional={"courses"},
)
register(
    "access_added",
    "{site_name}: you now have access to {levels}",
    {"member_name", "levels", "courses", "account_url"},
    "Sent to an existing member who gains access through a cart order, when the integration's "
    "access_added_email is on (new members get the welcome email instead).",
    links={"account_url"},
)
register(
    "login_link",
    "Your login link for {site_name}",
    {"member_name", "login_url"},
    "Sent when a member asks for a login link on /login.",
    body_required={"login_url"},
    links={"login_url"},
)
register(
    "payment_failed",
    "Action needed: your payment for {site_name} did not go through",
    {"member_name", "card_update_url", "grace_days", "levels"},
    "Sent when a cart reports a failed rebill: asks the member to update their card.",
    body_required={"card_update_url"},
    links={"card_update_url"},
)

register(
    "card_updated",
    "Your card for {site_name} has been updated",
    {"member_name", "brand", "last4", "expiry", "old_last4", "subscriptions", "changed_at"},
    "Sent after a member's card was replaced and their subscriptions (Keap's or ours) moved to it.",
)
register(
    "invitation",
    "Please update your card for {site_name}",
    {"member_name", "update_url", "expires_in_hours", "card"},
    "Sent when the owner invites a member to add or replace a card (billing): a single-use, expiring link.",
    body_required={"update_url"},
    links={"update_url"},
)
register(
    "automation_message",
    "{message_subject}",
    {"message_subject", "message_body"},
    "Sent by an automation rule: the owner writes the subject and body with {placeholders}.",
)
register(
    "invoice_issued",
    "Upcoming payment for {plan_name}: {amount} on {due_date}",
    {"member_name", "plan_name", "level_name", "invoice_number", "amount", "due_date", "period", "invoice_url"},
    "Sent when a subscription's invoice is issued, ahead of the charge (billing).",
    body_required={"invoice_url"},
    links={"invoice_url"},
)
register(
    "payment_receipt",
    "Receipt for {plan_name}: {amount} paid",
    {"member_name", "plan_name", "level_name", "invoice_number", "amount", "period", "invoice_url", "paid_date",
     "access_until"},
    "Sent when a subscription invoice is paid (billing).",
    body_required={"invoice_url"},
    links={"invoice_url"},
)
register(
    "invoice_payment_failed",
    "Action needed: your payment for {plan_name} did not go through",
    {"member_name", "plan_name", "level_name", "invoice_number", "amount", "due_date", "period", "invoice_url",
     "grace_days", "reason"},
    "Sent when charging a subscription invoice fails, with a link to retry or use a new card (billing).",
    body_required={"invoice_url"},
    links={"invoice_url"},
)
register(
    "invoice_action_required",
    "Please confirm your payment for {plan_name}",
    {"member_name", "plan_name", "level_name", "invoice_number", "amount", "due_date", "period", "invoice_url"},
    "Sent when the bank asks the customer to authenticate a subscription payment (billing).",
    body_required={"invoice_url"},
    links={"invoice_url"},
)
register(
    "subscription_unpaid",
    "Your subscription to {plan_name} has ended",
    {"member_name", "plan_name", "level_name", "invoice_number", "amount", "due_date", "period", "invoice_url"},
    "Sent when retries run out and a subscription becomes unpaid (billing).",
    body_required={"invoice_url"},
    links={"invoice_url"},
)
register(
    "subscription_cancelled",
    "Your subscription to {plan_name} is cancelled",
    {"member_name", "plan_name", "reason", "amount", "interval", "access_until"},
    "Sent when a subscription is cancelled by the customer, the owner, or because its plan was deleted (billing).",
)


def get(name: str) -> EmailKind:
    try:
        return CATALOG[name]
    except KeyError:
        raise LookupError(f"unknown email template {name!r}") from None
