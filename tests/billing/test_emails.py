"""Golden files for the billing emails: subject and text body of each, rendered from a fixed invoice.

Regenerate after an intended wording change with ``UPDATE_SNAPSHOTS=1 scripts/test tests/billing/test_emails.py``
and review the diff.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from billing import notify
from billing.models import Invoice, Mandate, Plan
from emails.models import OutboundEmail
from extensions import db
from membership.models import Level, Member

SNAPSHOTS = Path(__file__).parent / "snapshots"


@pytest.fixture
def fixed(app_ctx):
    member = Member(id=7, email="ada@example.com", name="Ada")
    plan = Plan(id=5, name="Gold monthly", level=Level(id=2, name="Gold", slug="gold"))
    mandate = Mandate(id=3, member=member, plan=plan, amount=2900, currency="usd", interval_unit="month", interval_count=1,
                      cancel_reason="plan_deleted")
    invoice = Invoice(id=11, number="CG-000003-202602101200", amount=2900, currency="usd",
                      period_start=datetime(2026, 2, 10, 12, tzinfo=UTC), period_end=datetime(2026, 3, 10, 12, tzinfo=UTC),
                      due_at=datetime(2026, 2, 10, 12, tzinfo=UTC), paid_at=datetime(2026, 2, 10, 12, 5, tzinfo=UTC),
                      action_ref="sbx_pi_1", mandate=mandate)
    return member, mandate, invoice


SENDERS = {
    "invoice_issued": lambda s, m, md, i: notify.invoice_issued(s, i, m, "Gold monthly"),
    "payment_receipt": lambda s, m, md, i: notify.receipt(s, i, m, "Gold monthly"),
    "invoice_payment_failed": lambda s, m, md, i: notify.payment_failed(s, i, m, "Gold monthly", 7,
                                                                        "The card was declined."),
    "invoice_action_required": lambda s, m, md, i: notify.action_required(s, i, m, "Gold monthly"),
    "subscription_unpaid": lambda s, m, md, i: notify.unpaid(s, i, m, "Gold monthly"),
    "subscription_cancelled": lambda s, m, md, i: notify.cancelled(s, md, m, "Gold monthly",
                                                                   datetime(2026, 3, 10, 12, tzinfo=UTC)),
}


@pytest.mark.parametrize("template", sorted(SENDERS))
def test_billing_email_matches_its_golden_file(fixed, template, monkeypatch):
    monkeypatch.setattr("billing.links.invoice_token", lambda invoice_id, member_id: "TOKEN")
    member, mandate, invoice = fixed
    captured: list[OutboundEmail] = []
    monkeypatch.setattr("emails.services.enqueue",
                        lambda session, name, to, context, **kw: captured.append(
                            OutboundEmail(template=name, recipient=to, **_render(name, context))))
    SENDERS[template](db.session, member, mandate, invoice)
    [email] = captured
    rendered = f"To: {email.recipient}\nSubject: {email.subject}\n\n{email.text_body}"
    golden = SNAPSHOTS / f"{template}.txt"
    if os.environ.get("UPDATE_SNAPSHOTS"):
        golden.write_text(rendered)
    assert rendered == golden.read_text()
    if template not in ("subscription_cancelled", "subscription_unpaid"):
        assert "/invoices/11?t=TOKEN" in email.html_body


def _render(name: str, context: dict) -> dict:
    from emails import rendering

    subject, text, html = rendering.render(name, context)
    return {"subject": subject, "text_body": text, "html_body": html}
