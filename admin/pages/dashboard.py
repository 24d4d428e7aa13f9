"""The dashboard: a few figures and the 90-day chart."""

from __future__ import annotations

from flask import render_template

from admin import chart, stats
from admin.pages.blueprint import DASHBOARD_COUNTS, bp
from extensions import db

NEW_MEMBERS_COLOUR = "#2271b1"
REVOCATIONS_COLOUR = "#b32d2e"


@bp.get("/")
def dashboard():
    figures = stats.counts(db.session)
    extra = [(item.label, item.value(db.session), item.endpoint) for item in DASHBOARD_COUNTS]
    series = stats.daily_series(db.session, 90)
    svg = chart.line_chart(series.days, [
        chart.Series("New members", series.new_members, NEW_MEMBERS_COLOUR),
        chart.Series("Revocations", series.revocations, REVOCATIONS_COLOUR, dash="6 4"),
    ], title="New members and revocations per day, last 90 days")
    rows = [(day, joined, revoked) for day, joined, revoked
            in zip(series.days, series.new_members, series.revocations)]
    return render_template("admin/dashboard.html", figures=figures, extra=extra, svg=svg, rows=rows,
                           colours=(NEW_MEMBERS_COLOUR, REVOCATIONS_COLOUR))
