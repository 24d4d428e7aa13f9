"""Money at risk: the billing report (``billing.reports``) as a page with charts, the same figures as
``GET /api/v1/reports/money-at-risk``."""

from __future__ import annotations

import math

from flask import render_template, request

from admin import chart
from admin.pages.blueprint import NAV, NavItem, bp
from billing import reports
from extensions import db

FAILED_COLOUR, RECOVERED_COLOUR, LAPSED_COLOUR, MRR_COLOUR = "#b32d2e", "#00703c", "#8a6100", "#2271b1"
MONTH_CHOICES = (3, 6, 12, 24, 36)

NAV.insert(next(i for i, item in enumerate(NAV) if item.endpoint == "admin.invoices") + 1,
           NavItem("admin.money_at_risk", "Money at risk"))


@bp.get("/money-at-risk")
def money_at_risk():
    months = request.args.get("months", 12, type=int)
    months = months if months in MONTH_CHOICES else 12
    currencies = reports.currencies(db.session)
    currency = request.args.get("currency", "").lower()
    report = reports.money_at_risk(db.session, months=months,
                                   currency=currency if currency in currencies else None)
    days = [m.month for m in report.months]
    every = max(1, math.ceil(len(days) / 12))
    failures = chart.line_chart(days, [
        chart.Series("Failed", [m.carts.failed + m.ours.failed for m in report.months], FAILED_COLOUR),
        chart.Series("Recovered", [m.carts.recovered + m.ours.recovered for m in report.months], RECOVERED_COLOUR,
                     dash="6 4"),
        chart.Series("Lapsed", [m.carts.lapsed + m.ours.lapsed for m in report.months], LAPSED_COLOUR, dash="2 3"),
    ], title=f"Failed payments per month, last {months} months", label_every=every, label_format="%b %Y",
        ident="failures-chart")
    mrr = chart.line_chart(days, [chart.Series(f"MRR ({report.currency.upper()})",
                                               [m.mrr // 100 for m in report.months], MRR_COLOUR)],
                           title=f"Monthly recurring revenue of our plans, last {months} months",
                           label_every=every, label_format="%b %Y", ident="mrr-chart")
    return render_template("admin/money_at_risk.html", report=report, months=months, choices=MONTH_CHOICES,
                           currencies=currencies, failures=failures, mrr=mrr, this_month=report.months[-1],
                           colours=(FAILED_COLOUR, RECOVERED_COLOUR, LAPSED_COLOUR, MRR_COLOUR))
