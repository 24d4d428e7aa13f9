"""Automations: the rules, their recent runs, and the outgoing webhook endpoints. The forms that build and edit
them are in automation_forms.py."""

from __future__ import annotations

from flask import render_template, request
from sqlalchemy import select

from admin.pages.blueprint import bp, paginate
from automations.models import AutomationRule, AutomationRun, RunStatus, WebhookEndpoint
from extensions import db
from membership.models import Level

RECENT = 20


@bp.get("/automations")
def automations():
    rules = list(db.session.scalars(select(AutomationRule).order_by(AutomationRule.id)))
    level_names = {level.id: level.name for level in db.session.scalars(
        select(Level).where(Level.id.in_({rule.level_id for rule in rules if rule.level_id})))}
    query = select(AutomationRun).order_by(AutomationRun.id.desc())
    status = request.args.get("status", "")
    if status in {s.value for s in RunStatus}:
        query = query.where(AutomationRun.status == status)
    else:
        status = ""
    endpoints = list(db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))
    return render_template("admin/automations.html", rules=rules, level_names=level_names,
                           page=paginate(query, per_page=RECENT), status=status, statuses=list(RunStatus),
                           endpoints=endpoints)
