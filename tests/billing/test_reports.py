"""Money at risk on constructed data: every expected figure below is worked out by hand in the comments."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

import timeutil
from billing import reports
from billing.models import Invoice, Mandate, PaymentAttempt, Plan
from extensions import db
from fulfillment.models import WebhookEvent
from tests import factories

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def at(month: int, day: int, year: int = 2026) -> datetime:
    return datetime(year, month, day, 9, 0, tzinfo=UTC)


def _mandate(member, plan, signed, cancelled=None) -> Mandate:
    mandate = Mandate(member_id=member.id, plan_id=plan.id, gateway="sandbox", amount=plan.amount,
                      currency=plan.currency, interval_unit=plan.interval_unit, interval_count=1,
                      authorisation_text="ok", status="cancelled" if cancelled else "active", signed_at=signed,
                      cancelled_at=cancelled, created_at=signed)
    db.session.add(mandate)
    db.session.flush()
    return mandate


_invoices = iter(range(1, 1000))


def _invoice(mandate, failures: list[datetime], paid=None) -> Invoice:
    n = next(_invoices)
    invoice = Invoice(number=f"T-{n}", mandate_id=mandate.id, member_id=mandate.member_id, amount=mandate.amount,
                      currency=mandate.currency, period_start=failures[0], period_end=failures[0],
                      issued_at=failures[0], due_at=failures[0], status="paid" if paid else "open",
                      payment_status="succeeded" if paid else "failed", paid_at=paid)
    db.session.add(invoice)
    db.session.flush()
    for moment in failures:
        db.session.add(PaymentAttempt(invoice_id=invoice.id, amount=invoice.amount, currency=invoice.currency,
                                      outcome="failed_retryable", gateway="sandbox", initiated_by="tick",
                                      created_at=moment))
    if paid:
        db.session.add(PaymentAttempt(invoice_id=invoice.id, amount=invoice.amount, currency=invoice.currency,
                                      outcome="succeeded", gateway="sandbox", initiated_by="tick", created_at=paid))
    db.session.flush()
    return invoice


_events = iter(range(1, 1000))


def _cart(integration, event: str, subscription: str, moment: datetime, *, test: bool = False) -> None:
    n = next(_events)
    body = {"event": event, "id": f"e{n}", "subscription_id": subscription, "invoice_id": f"inv{n}", "test": test}
    db.session.add(WebhookEvent(integration_id=integration.id, provider="generic", event_type=event,
                                status="processed", test_mode=test, body=json.dumps(body),
                                content_type="application/json", received_at=moment, processed_at=moment))


@pytest.fixture
def books(app_ctx):
    """Oct-Dec 2026, in USD (a EUR plan is left out of every figure)."""
    member = factories.make_member()
    level = factories.make_level()
    monthly = Plan(name="Monthly", level_id=level.id, amount=4900, currency="usd", interval_unit="month")
    yearly = Plan(name="Yearly", level_id=level.id, amount=120000, currency="usd", interval_unit="year")
    euro = Plan(name="Euro", level_id=level.id, amount=3000, currency="eur", interval_unit="month")
    db.session.add_all([monthly, yearly, euro])
    db.session.flush()
    m1 = _mandate(member, monthly, at(9, 15))  # MRR 4900 throughout
    m2 = _mandate(member, yearly, at(10, 10), cancelled=at(11, 20))  # MRR 120000 / 12 = 10000, Oct 10 - Nov 20
    m3 = _mandate(member, monthly, at(11, 2))  # MRR 4900 from Nov 2
    eur = _mandate(member, euro, at(9, 1))
    _invoice(m1, [at(10, 5), at(10, 6)], paid=at(10, 8))  # Oct: recovered after 3 days (grace 7): kept 4900
    _invoice(m1, [at(11, 3), at(11, 6)])  # Nov: never paid, Nov 10 passed: lapsed, lost 4900
    _invoice(m1, [at(11, 25)], paid=at(12, 5))  # Nov: paid after 10 days > 7: lapsed, lost 4900
    _invoice(m3, [at(12, 4)])  # Dec: unpaid, grace ends Dec 11 > Dec 6: in grace
    _invoice(m1, [at(9, 20)])  # before the window: in no figure
    _invoice(eur, [at(11, 3)])  # another currency

    a = factories.make_integration(kind="generic", grace_days=7)
    b = factories.make_integration(kind="generic", grace_days=3)
    _cart(a, "payment.failed", "sub-1", at(10, 10))
    _cart(a, "payment.failed", "sub-1", at(10, 12))  # the cart's retry: the same failure
    _cart(a, "payment.succeeded", "sub-1", at(10, 14))  # Oct: recovered
    _cart(a, "payment.failed", "sub-2", at(11, 10))
    _cart(a, "payment.succeeded", "sub-2", at(11, 20))  # 10 days > 7: Nov lapsed
    _cart(b, "payment.failed", "sub-3", at(11, 28))
    _cart(b, "payment.succeeded", "sub-3", at(12, 2))  # 4 days > b's 3: Nov lapsed
    _cart(a, "payment.failed", "sub-4", at(12, 3))  # Dec: grace ends Dec 10 > Dec 6: in grace
    _cart(a, "payment.failed", "sub-5", at(12, 1), test=True)  # a test order: left out
    _cart(a, "payment.failed", "sub-6", at(9, 28))
    _cart(a, "payment.succeeded", "sub-6", at(10, 1))  # failed before the window: in no figure
    db.session.commit()


def _report():
    with timeutil.frozen(NOW):
        return {m.label: m for m in reports.money_at_risk(db.session, months=3).months}


def test_failures_recoveries_and_lapses_by_month(books):
    months = _report()
    assert list(months) == ["2026-10", "2026-11", "2026-12"]
    oct_, nov, dec = months.values()
    assert (oct_.ours.failed, oct_.ours.recovered, oct_.ours.lapsed, oct_.ours.in_grace) == (1, 1, 0, 0)
    assert (nov.ours.failed, nov.ours.recovered, nov.ours.lapsed, nov.ours.in_grace) == (2, 0, 2, 0)
    assert (dec.ours.failed, dec.ours.recovered, dec.ours.lapsed, dec.ours.in_grace) == (1, 0, 0, 1)
    assert (oct_.at_risk_amount, oct_.kept_amount, oct_.lost_amount) == (4900, 4900, 0)
    assert (nov.at_risk_amount, nov.kept_amount, nov.lost_amount) == (9800, 0, 9800)
    assert (dec.at_risk_amount, dec.kept_amount, dec.lost_amount) == (4900, 0, 0)

    assert (oct_.carts.failed, oct_.carts.recovered, oct_.carts.lapsed, oct_.carts.in_grace) == (1, 1, 0, 0)
    assert (nov.carts.failed, nov.carts.recovered, nov.carts.lapsed, nov.carts.in_grace) == (2, 0, 2, 0)
    assert (dec.carts.failed, dec.carts.recovered, dec.carts.lapsed, dec.carts.in_grace) == (1, 0, 0, 1)


def test_recurring_revenue_and_churn_of_our_plans(books):
    oct_, nov, dec = _report().values()
    # Oct ends with m1 and m2: 4900 + 10000. It began with m1 alone; nothing cancelled.
    assert (oct_.mrr, oct_.active_subscriptions, oct_.churned, oct_.churn_rate) == (14900, 2, 0, 0.0)
    # Nov began with m1, m2 (2); m2 cancelled (10000 a month); it ends with m1 and m3: 9800.
    assert (nov.mrr, nov.active_subscriptions, nov.churned, nov.churned_mrr, nov.churn_rate) == (9800, 2, 1, 10000,
                                                                                                  50.0)
    # Dec so far: m1 and m3.
    assert (dec.mrr, dec.active_subscriptions, dec.churned, dec.churn_rate) == (9800, 2, 0, 0.0)


def test_another_currency_has_its_own_figures(books):
    with timeutil.frozen(NOW):
        euro = {m.label: m for m in reports.money_at_risk(db.session, months=3, currency="EUR").months}
    assert euro["2026-11"].ours.failed == 1 and euro["2026-11"].at_risk_amount == 3000
    assert euro["2026-12"].mrr == 3000
    assert euro["2026-11"].carts.failed == 2  # carts send no currency: the same counts in every currency


def test_the_window_is_calendar_months_ending_with_this_one(app_ctx):
    with timeutil.frozen(datetime(2026, 3, 31, 23, 0, tzinfo=UTC)):
        report = reports.money_at_risk(db.session, months=14)
    assert [m.label for m in report.months][:2] == ["2025-02", "2025-03"]
    assert report.months[-1].label == "2026-03" and len(report.months) == 14
    assert report.currency == "usd" and report.grace_days == 7
    assert all(m.churn_rate is None and m.mrr == 0 for m in report.months)


def test_monthly_amount_normalises_intervals():
    assert reports.monthly_amount(Mandate(amount=120000, interval_unit="year", interval_count=1)) == 10000
    assert reports.monthly_amount(Mandate(amount=9000, interval_unit="month", interval_count=3)) == 3000
    assert reports.monthly_amount(Mandate(amount=1000, interval_unit="week", interval_count=1)) == 4333


def test_the_owner_api_gives_the_same_figures(books, api, client):
    with timeutil.frozen(NOW):
        response = api.get("/api/v1/reports/money-at-risk?months=3")
    assert response.status_code == 200, response.json
    body = response.json
    assert body["currency"] == "usd" and body["grace_days"] == 7
    assert [m["month"] for m in body["months"]] == ["2026-10", "2026-11", "2026-12"]
    nov = body["months"][1]
    assert nov["ours"] == {"failed": 2, "recovered": 0, "lapsed": 2, "in_grace": 0}
    assert nov["carts"] == {"failed": 2, "recovered": 0, "lapsed": 2, "in_grace": 0}
    assert (nov["at_risk_amount"], nov["kept_amount"], nov["lost_amount"]) == (9800, 0, 9800)
    assert (nov["mrr"], nov["churned"], nov["churned_mrr"], nov["churn_rate"]) == (9800, 1, 10000, 50.0)
    assert body["months"][0]["kept_amount"] == 4900

    assert client.get("/api/v1/reports/money-at-risk").status_code == 401
    too_many = api.get("/api/v1/reports/money-at-risk?months=37")
    assert too_many.status_code == 422 and too_many.json["code"] == "validation_error"
    spec = api.get("/api/v1/openapi.json").json
    assert "/api/v1/reports/money-at-risk" in spec["paths"]
    assert "MoneyAtRiskMonthOut" in spec["components"]["schemas"]
