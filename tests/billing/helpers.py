"""Billing test helpers: a plan, a customer signed up through the real pages, time travel, and lookups."""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy import select

from billing import lifecycle
from billing.gateways import sandbox
from billing.models import Invoice, Mandate, PaymentMethod, Plan
from emails.models import OutboundEmail
from extensions import db
from membership.models import Grant
from tests import factories
from tests.helpers import delivered_text

CARDS = {
    "success": "4242424242424242",
    "success_mc": "5555555555554444",
    "decline": "4000000000000002",
    "insufficient_funds": "4000000000009995",
    "requires_action": "4000000000003220",
    "expired_card": "4000000000000069",
    "processing_error": "4000000000000119",
}


def make_plan(*, amount: int = 2900, currency: str = "usd", interval_unit: str = "month", interval_count: int = 1,
              name: str = "Gold monthly", level=None) -> Plan:
    level = level or factories.make_level(name="Gold")
    plan = Plan(name=name, level=level, level_id=level.id, amount=amount, currency=currency,
                interval_unit=interval_unit, interval_count=interval_count)
    db.session.add(plan)
    db.session.commit()
    return plan


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def sign_up(client, plan_id: int, email: str, card: str = "success", *, name: str = "Ada") -> Mandate:
    """Walk the real sign-up: plan page -> sandbox hosted card page -> back to us (first charge)."""
    response = client.post(f"/plans/{plan_id}", data={"email": email, "name": name, "agree": "yes"})
    assert response.status_code == 302, response.get_data(as_text=True)
    checkout = path_of(response.headers["Location"])
    assert checkout.startswith("/sandbox/checkout/")
    response = client.post(checkout, data={"cardnumber": CARDS[card], "exp": "12/34", "cvc": "123"})
    assert response.status_code == 302, response.get_data(as_text=True)
    back = path_of(response.headers["Location"])
    assert back.startswith("/subscriptions/")
    response = client.get(back)
    assert response.status_code == 302, response.get_data(as_text=True)
    assert "/invoices/" in response.headers["Location"]
    db.session.expire_all()
    return db.session.scalars(select(Mandate).order_by(Mandate.id.desc())).first()


def tick(at: datetime | None = None):
    report = lifecycle.tick(db.session, at)
    db.session.expire_all()
    return report


def set_card(mandate: Mandate, behaviour: str) -> None:
    method = db.session.get(PaymentMethod, mandate.payment_method_id)
    sandbox.set_card_behaviour(db.session, method.token, behaviour)
    db.session.commit()


def invoices_of(mandate: Mandate) -> list[Invoice]:
    return list(db.session.scalars(select(Invoice).where(Invoice.mandate_id == mandate.id).order_by(Invoice.id)))


def grant_of(mandate: Mandate) -> Grant | None:
    return db.session.scalars(select(Grant).where(Grant.mandate_id == mandate.id).order_by(Grant.id.desc())).first()


def emails(template: str | None = None, to: str | None = None) -> list[OutboundEmail]:
    query = select(OutboundEmail).order_by(OutboundEmail.id)
    if template:
        query = query.where(OutboundEmail.template == template)
    if to:
        query = query.where(OutboundEmail.recipient == to)
    return list(db.session.scalars(query))


def templates_sent(to: str) -> list[str]:
    return [email.template for email in emails(to=to)]


def link_in(email: OutboundEmail) -> str:
    """The invoice link in the message as delivered (the outbox row keeps only a marker)."""
    assert "[link made when sent: invoice/" in email.text_body and "?t=" not in email.text_body
    text = delivered_text(email.id)
    match = re.search(r"http://coursegate\.test(/invoices/\d+\?t=[\w.\-]+)", text)
    assert match, text
    return match.group(1)
