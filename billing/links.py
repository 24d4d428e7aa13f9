"""Signed links to a member's invoice, for emails: the invoice page opens with one even when signed out."""

from __future__ import annotations

from flask import current_app

from membership import tokens

INVOICE_LINK = "coursegate.billing.invoice-link"


def invoice_token(invoice_id: int, member_id: int) -> str:
    return tokens.sign(INVOICE_LINK, {"i": invoice_id, "m": member_id})


def invoice_url(invoice_id: int, member_id: int) -> str:
    return f"{current_app.config['SITE_URL']}/invoices/{invoice_id}?t={invoice_token(invoice_id, member_id)}"


def check_invoice_token(token: str, invoice_id: int) -> int | None:
    """The member id the link was issued to, if ``token`` is a valid, unexpired link to this invoice."""
    check = tokens.check(INVOICE_LINK, token, int(current_app.config["BILLING_LINK_MAX_AGE"]))
    if check.status != "ok" or check.payload.get("i") != invoice_id:
        return None
    return check.payload.get("m")
