"""The dashboard: a few figures and the 90-day chart."""

from __future__ import annotations

from flask import render_template, url_for
from sqlalchemy import select

from admin import chart, stats
from admin.pages.blueprint import DASHBOARD_COUNTS, bp
from extensions import db
from fulfillment.models import Integration

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
    steps = stats.getting_started(db.session)
    return render_template("admin/dashboard.html", figures=figures, extra=extra, svg=svg, rows=rows,
                           colours=(NEW_MEMBERS_COLOUR, REVOCATIONS_COLOUR),
                           steps=[(step, _step_link(step)) for step in steps],
                           setup_done=all(step.done for step in steps))


def _step_link(step: stats.Step) -> str:
    """Where each getting-started step is done; the cart steps go to the newest integration once there is one."""
    integration_id = db.session.scalar(select(Integration.id).order_by(Integration.id.desc()).limit(1))
    if step.key == "course":
        return url_for("admin.courses")
    if step.key == "level":
        return url_for("admin.levels")
    if integration_id is None or step.key == "cart":
        return url_for("admin.integrations") if integration_id else url_for("admin.integration_new")
    anchor = "#products-heading" if step.key == "product" else "#deliveries-heading"
    return url_for("admin.integration", integration_id=integration_id) + anchor
