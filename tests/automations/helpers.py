"""Small helpers shared by the automation tests (call inside an app context)."""

from __future__ import annotations

from sqlalchemy import select

from automations import rules
from automations.models import AutomationRun
from extensions import db
from membership import tags as member_tags


def make_rule(trigger: str, actions: list[dict], **fields):
    rule = rules.create_rule(db.session, {"name": fields.pop("name", f"{trigger} rule"), "trigger": trigger,
                                          "actions": actions, **fields})
    db.session.flush()
    return rule


def tag_names(member) -> list[str]:
    return [row.tag.name for row in member_tags.member_tags(db.session, member.id)]


def runs(rule=None) -> list[AutomationRun]:
    query = select(AutomationRun).order_by(AutomationRun.id)
    if rule is not None:
        query = query.where(AutomationRun.rule_id == rule.id)
    return list(db.session.scalars(query))
