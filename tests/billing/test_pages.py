"""Member pages: the sign-up page, the sandbox card page, invoice access, the account partial."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from flask import render_template_string
from sqlalchemy import select, text

import timeutil
from billing import queries
from extensions import db
from membership.models import Member
from tests.billing.helpers import CARDS, invoices_of, make_plan, path_of, sign_up

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def plan(app_ctx):
    with timeutil.frozen(T0):
        yield make_plan(amount=4900, interval_unit="year")


def test_sign_up_page_shows_price_interval_and_the_authorisation_text(client, plan):
    page = client.get(f"/plans/{plan.id}").get_data(as_text=True)
    assert "$49.00" in page and "every year" in page
    assert "I authorise Test Academy to charge $49.00 to my card now and every year after that" in page
    assert 'name="email"' in page
    assert client.get("/plans/999").status_code == 404


def test_sign_up_page_for_a_signed_in_member_asks_no_email(client, plan):
    member = Member(email="ada@example.com", name="Ada")
    db.session.add(member)
    db.session.commit()
    with client.session_transaction() as browser:
        browser["member_id"] = member.id
    page = client.get(f"/plans/{plan.id}").get_data(as_text=True)
    assert "Signing up as <strong>ada@example.com</strong>" in page and 'name="email"' not in page


def test_sign_up_needs_an_email_and_the_agreement(client, plan):
    response = client.post(f"/plans/{plan.id}", data={"email": "ada@example.com"})
    assert response.status_code == 422 and "agree" in response.get_data(as_text=True)
    response = client.post(f"/plans/{plan.id}", data={"agree": "yes"})
    assert response.status_code == 422 and "Enter your email" in response.get_data(as_text=True)
    response = client.post(f"/plans/{plan.id}", data={"email": "not-an-email", "agree": "yes"})
    assert response.status_code == 422
    assert db.session.scalar(select(Member.id)) is None


def test_sandbox_card_page_refuses_bad_numbers_and_expired_cards(client, plan):
    response = client.post(f"/plans/{plan.id}", data={"email": "ada@example.com", "agree": "yes"})
    checkout = path_of(response.headers["Location"])
    page = client.get(checkout).get_data(as_text=True)
    assert "4000000000003220" in page and "requires action" in page  # the documented test cards
    for card, message in (({"cardnumber": "4242424242424241"}, "not valid"),
                          ({"cardnumber": "4111111111111111"}, "only accepts its test card numbers"),
                          ({"exp": "01/20"}, "expired"),
                          ({"exp": "13/30"}, "MM/YY"),
                          ({"cvc": "1"}, "security code")):
        data = {"cardnumber": CARDS["success"], "exp": "12/34", "cvc": "123", **card}
        response = client.post(checkout, data=data)
        assert response.status_code == 422 and message in response.get_data(as_text=True)
    assert client.get("/sandbox/checkout/forged-token").status_code == 404


def test_the_card_number_never_reaches_our_tables_or_logs(client, plan, caplog):
    caplog.set_level(logging.DEBUG)
    with timeutil.frozen(T0):
        mandate = sign_up(client, plan.id, "ada@example.com")
    assert mandate.payment_method.token.startswith("sbx_pm_")
    assert (mandate.payment_method.brand, mandate.payment_method.last4) == ("visa", "4242")
    number = CARDS["success"]
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(text(f"SELECT * FROM {table.name}")):
            assert number not in " ".join(str(value) for value in row), table.name
    assert number not in caplog.text


def test_an_invoice_is_shown_only_with_its_signed_link_or_to_its_member(client, plan):
    with timeutil.frozen(T0):
        mandate = sign_up(client, plan.id, "ada@example.com")
    [invoice] = invoices_of(mandate)
    assert client.get(f"/invoices/{invoice.id}").status_code == 404
    assert client.get(f"/invoices/{invoice.id}?t=forged").status_code == 404
    from billing import links

    other_invoice_token = links.invoice_token(invoice.id + 1, mandate.member_id)
    assert client.get(f"/invoices/{invoice.id}?t={other_invoice_token}").status_code == 404
    page = client.get(f"/invoices/{invoice.id}?t={links.invoice_token(invoice.id, mandate.member_id)}")
    assert page.status_code == 200 and "Paid on 10 January 2026" in page.get_data(as_text=True)
    assert '<td id="invoice-level">Gold</td>' in page.get_data(as_text=True)  # the level the invoice renews
    eve = Member(email="eve@example.com")
    db.session.add(eve)
    db.session.commit()
    with client.session_transaction() as browser:
        browser["member_id"] = eve.id
    assert client.get(f"/invoices/{invoice.id}").status_code == 404


def test_account_summary_and_partial_list_mandates_and_invoices(app, client, plan):
    with timeutil.frozen(T0):
        mandate = sign_up(client, plan.id, "ada@example.com")
        summary = queries.account_summary(db.session, mandate.member_id)
        [row] = summary["mandates"]
        assert (row.plan_name, row.price, row.status, row.card) == ("Gold monthly", "$49.00 every year", "active",
                                                                     "Visa ending 4242")
        assert row.next_charge == "10 January 2027" and row.cancellable
        [invoice] = summary["invoices"]
        assert (invoice.amount, invoice.status, invoice.needs_attention) == ("$49.00", "paid", False)
        member = db.session.get(Member, mandate.member_id)
        with app.test_request_context("/account"):
            html = render_template_string('{% include "billing/_account_section.html" %}', member=member)
        assert f'action="/subscriptions/{mandate.id}/cancel"' in html and invoice.number in html
        assert 'name="next" value="/account"' in html


def test_subscriptions_page_needs_a_signed_in_member(client, app_ctx):
    assert client.get("/subscriptions").status_code == 401
    assert client.post("/subscriptions/1/cancel").status_code == 401
