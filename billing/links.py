"""Signed links to a member's invoice, for emails: the invoice page opens with one even when signed out."""

from __future__ import annotations

import re

from flask import current_app
from itsdangerous import BadSignature
from sqlalchemy.orm import Session

from emails import credentials
from membership import services as member_services
from membership import tokens

INVOICE_LINK = "coursegate.billing.invoice-link"


def invoice_token(invoice_id: int, member_id: int) -> str:
    return tokens.sign(INVOICE_LINK, {"i": invoice_id, "m": member_id})


def invoice_url(invoice_id: int, member_id: int) -> str:
    return f"{current_app.config['SITE_URL']}/invoices/{invoice_id}?t={invoice_token(invoice_id, member_id)}"


def _read_invoice_link(match: re.Match) -> tuple[str, ...] | None:
    try:
        payload = tokens.serializer(INVOICE_LINK).loads(match.group("token"))
    except BadSignature:
        return None
    if (not isinstance(payload, dict) or payload.get("i") != int(match.group("invoice"))
            or not isinstance(payload.get("m"), int)):
        return None
    return str(payload["i"]), str(payload.get("m"))


def _make_invoice_link(session: Session, what: tuple[str, ...], address: str) -> str:
    invoice_id, member_id = (int(part) for part in what)
    member = member_services.member_at(session, member_id, address)
    return invoice_url(invoice_id, member.id)


# The outbox keeps a marker where an invoice link was; delivery makes a new link (see emails/credentials.py).
credentials.register(credentials.Credential(
    "invoice", r"/invoices/(?P<invoice>\d+)\?t=" + credentials.TOKEN, _read_invoice_link, _make_invoice_link))


def check_invoice_token(token: str, invoice_id: int) -> int | None:
    """The member id the link was issued to, if ``token`` is a valid, unexpired link to this invoice."""
    check = tokens.check(INVOICE_LINK, token, int(current_app.config["BILLING_LINK_MAX_AGE"]))
    if check.status != "ok" or check.payload.get("i") != invoice_id:
        return None
    return check.payload.get("m")
