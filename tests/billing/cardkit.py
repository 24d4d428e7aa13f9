"""Helpers for the billing page, card update and invitation tests."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from pathlib import Path

from flask import current_app
from sqlalchemy import String, Text, select

from billing.models import Mandate, PaymentMethod
from extensions import db
from membership.models import Member
from tests import factories
from tests.billing.helpers import CARDS, make_plan, path_of, sign_up

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


def sign_in(client, member_id: int) -> None:
    with client.session_transaction() as s:
        s["member_id"] = member_id


def member_by_email(email: str) -> Member:
    return db.session.scalar(select(Member).where(Member.email == email))


def subscribe(client, email: str, plans: int = 1, card: str = "success") -> list[Mandate]:
    """``plans`` mandates for ``email``, each signed through the real pages (each captures its own card)."""
    mandates = []
    for n in range(plans):
        plan = make_plan(name=f"Plan {n + 1}", amount=1000 * (n + 1),
                         level=factories.make_level(name=f"Level {email} {n + 1}"))
        mandates.append(sign_up(client, plan.id, email, card))
    with client.session_transaction() as s:  # signing up leaves no member session behind in these tests
        s.pop("member_id", None)
    return mandates


def share_one_card(mandates: list[Mandate]) -> PaymentMethod:
    """Put every mandate on the first one's card (as if the member had used the same card each time)."""
    first = db.session.get(PaymentMethod, mandates[0].payment_method_id)
    for mandate in mandates[1:]:
        other = db.session.get(PaymentMethod, mandate.payment_method_id)
        mandate.payment_method_id = first.id
        db.session.flush()
        db.session.delete(other)
    db.session.commit()
    return first


def capture_card(client, start_response, card: str = "success", exp: str = "11/33"):
    """Follow a redirect to the sandbox hosted page, enter a test card, and come back to us."""
    assert start_response.status_code == 302, start_response.get_data(as_text=True)
    checkout = path_of(start_response.headers["Location"])
    assert checkout.startswith("/sandbox/checkout/")
    response = client.post(checkout, data={"cardnumber": CARDS[card], "exp": exp, "cvc": "123"})
    assert response.status_code == 302, response.get_data(as_text=True)
    back = client.get(path_of(response.headers["Location"]))
    back.close()  # jobs queued by the request run now
    return back


def mails() -> list[str]:
    """The plain-text part of every email written to the mail folder, oldest first."""
    folder = Path(current_app.config["COURSEGATE_MAIL_DIR"])
    texts = []
    for path in sorted(folder.glob("*.eml")) if folder.exists() else []:
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        texts.append(message.get_body(preferencelist=("plain",)).get_content())
    return texts


def invitation_link(index: int = -1) -> str:
    links = [m for mail in mails() for m in re.findall(r"http://coursegate\.test(/card-update/[\w.\-]+)", mail)]
    assert links, "no invitation email was sent"
    return links[index]


def text_values() -> list[tuple[str, str]]:
    """(table, value) for every text-like column of every table: what a secret must never be in."""
    found = []
    for table in db.metadata.sorted_tables:
        columns = [c for c in table.columns if isinstance(c.type, (String, Text)) or c.type.__class__.__name__ == "JSON"]
        if not columns:
            continue
        for row in db.session.execute(select(*columns)):
            found.extend((table.name, str(value)) for value in row if value is not None)
    return found


__all__ = ["CARDS", "T0", "capture_card", "invitation_link", "mails", "member_by_email", "share_one_card",
           "sign_in", "subscribe", "text_values"]
