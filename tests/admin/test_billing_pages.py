"""Plans, subscriptions and invoices in the admin: the billing services behind forms, with the API's messages."""

from __future__ import annotations

from markupsafe import escape
from sqlalchemy import select

from billing.errors import InvoiceNotOpen, MandateNotCancellable, PlanImmutable
from billing.models import Invoice, Mandate, Plan
from extensions import db
from tests import factories
from tests.billing.helpers import CARDS, path_of


def sign_up(admin, plan_id: int, email: str, card: str = "success") -> int:
    """A customer signs up through the real pages (the same session's CSRF token serves them)."""
    response = admin.post(f"/plans/{plan_id}", {"email": email, "name": "Ada", "agree": "yes"})
    assert response.status_code == 302, response.text
    checkout = path_of(response.headers["Location"])
    response = admin.post(checkout, {"cardnumber": CARDS[card], "exp": "12/34", "cvc": "123"})
    assert response.status_code == 302, response.text
    admin.get(path_of(response.headers["Location"])).close()
    return db.session.scalars(select(Mandate.id).order_by(Mandate.id.desc())).first()


def test_owner_creates_renames_pauses_resumes_and_deletes_a_plan(admin, app):
    with app.app_context():
        gold = factories.make_level(name="Gold")
        db.session.commit()
        gold_id = gold.id
    page = admin.get("/admin/plans")
    assert page.status_code == 200 and "Create a plan" in page.text
    assert str(escape(PlanImmutable.message)) in page.text

    refused = admin.post("/admin/plans", {"name": "Gold", "level_id": gold_id, "amount": "0", "currency": "dollars",
                                          "interval_count": "1", "interval_unit": "month"})
    assert refused.status_code == 422
    assert "Use a three-letter ISO 4217 code" in refused.text and 'aria-invalid="true"' in refused.text

    created = admin.post("/admin/plans", {"name": "Gold monthly", "level_id": gold_id, "amount": "49.90",
                                          "currency": "EUR", "interval_count": "1", "interval_unit": "month"})
    assert created.status_code == 302
    with app.app_context():
        plan = db.session.scalars(select(Plan)).one()
        assert (plan.amount, plan.currency, plan.interval_unit, plan.state) == (4990, "eur", "month", "active")
        plan_id = plan.id
    shown = admin.get(f"/admin/plans/{plan_id}", follow_redirects=True).text
    assert "49.90 EUR every month" in shown and str(escape(PlanImmutable.message)) in shown

    assert admin.post(f"/admin/plans/{plan_id}", {"name": "Gold (monthly)"}).status_code == 302
    assert admin.post(f"/admin/plans/{plan_id}/pause").status_code == 302
    page = admin.get(f"/admin/plans/{plan_id}").text
    assert "paused: no new sign-ups" in page and "Gold (monthly)" in page and "Resume sign-ups" in page
    admin.post(f"/admin/plans/{plan_id}/resume")
    assert "open for sign-ups again" in admin.get(f"/admin/plans/{plan_id}").text
    admin.post(f"/admin/plans/{plan_id}/delete")
    page = admin.get(f"/admin/plans/{plan_id}").text
    assert "deleted; its live subscriptions are cancelled" in page and "Pause sign-ups" not in page
    # A deleted plan cannot change: the service's refusal, as the API words it.
    admin.post(f"/admin/plans/{plan_id}/resume")
    assert "That plan is deleted and cannot change any more." in admin.get(f"/admin/plans/{plan_id}").text
    assert admin.get("/admin/plans?state=deleted").text.count(f'href="/admin/plans/{plan_id}"') == 1
    assert admin.get("/admin/plans/999").status_code == 404


def test_owner_sees_a_subscription_cancels_it_and_voids_or_retries_invoices(admin, app):
    with app.app_context():
        plan = Plan(name="Gold monthly", level=factories.make_level(name="Gold"), amount=2900, currency="usd",
                    interval_unit="month", interval_count=1)
        db.session.add(plan)
        db.session.commit()
        plan_id = plan.id
        mandate_id = sign_up(admin, plan_id, "ada@example.com")
        member_id = db.session.get(Mandate, mandate_id).member_id

    listing = admin.get("/admin/subscriptions").text
    assert "ada@example.com" in listing and "ending 4242" in listing and "29.00 USD every month" in listing
    assert "ada@example.com" not in admin.get("/admin/subscriptions?status=cancelled").text
    member_page = admin.get(f"/admin/members/{member_id}").text
    assert "Subscriptions of ada@example.com" in member_page and "ending 4242" in member_page
    assert "Invoices of ada@example.com" in member_page

    with app.app_context():
        paid = db.session.scalars(select(Invoice).where(Invoice.mandate_id == mandate_id)).one()
        paid_id, paid_number = paid.id, paid.number
    invoice_page = admin.get(f"/admin/invoices/{paid_id}").text
    assert paid_number in invoice_page and "succeeded" in invoice_page and "Void invoice" not in invoice_page
    assert "<dt>Renews level</dt><dd>Gold</dd>" in invoice_page
    # A paid invoice is not open: the API's refusal.
    admin.post(f"/admin/invoices/{paid_id}/void")
    assert str(escape(InvoiceNotOpen.message)) in admin.get(f"/admin/invoices/{paid_id}").text

    # An open invoice: charge it now, then void the next one.
    with app.app_context():
        from billing import invoices
        mandate = db.session.get(Mandate, mandate_id)
        opened = invoices.issue_invoice(db.session, mandate, mandate.current_period_end)
        db.session.commit()
        open_id = opened.id
    assert "Charge now" in admin.get(f"/admin/invoices/{open_id}").text
    admin.post(f"/admin/invoices/{open_id}/retry")
    page = admin.get(f"/admin/invoices/{open_id}").text
    assert "Charged invoice" in page and "succeeded" in page
    with app.app_context():
        assert db.session.get(Invoice, open_id).status == "paid"
        mandate = db.session.get(Mandate, mandate_id)
        another = invoices.issue_invoice(db.session, mandate, mandate.current_period_end)
        db.session.commit()
        another_id = another.id
    admin.post(f"/admin/invoices/{another_id}/void")
    assert "voided: it will not be charged" in admin.get(f"/admin/invoices/{another_id}").text
    assert admin.get("/admin/invoices?status=void").text.count(f'href="/admin/invoices/{another_id}"') == 1

    admin.post(f"/admin/subscriptions/{mandate_id}/cancel")
    page = admin.get(f"/admin/subscriptions/{mandate_id}").text
    assert "cancelled: no further charges" in page and "owner cancelled" in page
    admin.post(f"/admin/subscriptions/{mandate_id}/cancel")
    assert str(escape(MandateNotCancellable.message)) in admin.get(f"/admin/subscriptions/{mandate_id}").text
    assert admin.get("/admin/subscriptions/999").status_code == 404
    assert admin.get("/admin/invoices/999").status_code == 404
