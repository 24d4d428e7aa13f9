"""What a rule can do. Each action returns a small dict describing what it did (logged on the run)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import Session

import timeutil
from automations import placeholders, tags, webhooks
from automations.errors import ActionFailed
from automations.events import Event
from automations.models import AutomationRule, AutomationRun, Trigger, WebhookEndpoint
from emails import catalog
from emails import services as email_services
from membership import grants, services
from membership import tags as member_tags
from membership.models import Grant, GrantSourceKind, GrantStatus, Level
from membership.tags import AppliedBy

ACTION_TYPES = ("add_tag", "remove_tag", "grant_level", "revoke_level", "restore_access", "send_email",
                "send_webhook")
DEFAULT_GRACE_DAYS = 7
# Context every automation email can be given; a catalog email needing anything else cannot be sent by a rule.
EMAIL_CONTEXT = frozenset({"member_name", "login_url", "levels", "card_update_url", "grace_days",
                           "message_subject", "message_body"})


@dataclass
class Step:
    rule: AutomationRule
    run: AutomationRun
    index: int
    event: Event

    @property
    def session_source(self) -> str:
        return f"rule #{self.rule.id}"

    def child_key(self, suffix: str = "") -> str:
        return f"{self.event.key}>r{self.rule.id}.{self.index}{suffix}"

    @property
    def member(self):
        return self.event.member

    def integration(self, session: Session) -> dict:
        return tags.integration_settings(session, self.event.row.integration_id)

    def grace_days(self, session: Session) -> int:
        if self.event.context.get("grace_days") is not None:
            return int(self.event.context["grace_days"])
        return int(self.integration(session).get("grace_days") or DEFAULT_GRACE_DAYS)

    def card_update_url(self, session: Session) -> str:
        return (self.event.context.get("card_update_url") or self.integration(session).get("card_update_url")
                or f"{current_app.config['SITE_URL']}/account")


def perform(session: Session, step: Step, action: dict) -> dict:
    return HANDLERS[action["type"]](session, step, action)


def add_tag(session: Session, step: Step, action: dict) -> dict:
    added = member_tags.tag_member(session, step.member, action["tag"], applied_by=AppliedBy.AUTOMATION,
                                   source=step.session_source, event_key=step.child_key(),
                                   integration_id=step.event.row.integration_id, depth=step.event.depth + 1)
    return {"tag": action["tag"], "outcome": "added" if added else "already_tagged"}


def remove_tag(session: Session, step: Step, action: dict) -> dict:
    removed = member_tags.untag_member(session, step.member, action["tag"], event_key=step.child_key(),
                                       integration_id=step.event.row.integration_id, depth=step.event.depth + 1)
    return {"tag": action["tag"], "outcome": "removed" if removed else "not_tagged"}


def _level(session: Session, level_id: int) -> Level:
    level = session.get(Level, level_id)
    if level is None:
        raise ActionFailed(f"Access level {level_id} no longer exists.")
    return level


def grant_level(session: Session, step: Step, action: dict) -> dict:
    level = _level(session, action["level_id"])
    ends_at = None
    if action.get("days"):
        ends_at = timeutil.now() + timedelta(days=action["days"])
    grant = grants.open_grant(session, step.member, level, source_kind=GrantSourceKind.AUTOMATION,
                              ends_at=ends_at, note=f"automation rule #{step.rule.id}")
    return {"level_id": level.id, "grant_id": grant.id, "ends_at": ends_at.isoformat() if ends_at else None,
            "outcome": "granted"}


def _event_grants(session: Session, step: Step, level_id: int | None, *, include_revoked: bool = False) -> list[Grant]:
    """The grants an action on "the event's access" means: a named level, else the grants the event named,
    else the event's level, else (payment events) the member's grants held back by a failed payment."""
    query = select(Grant).where(Grant.member_id == step.member.id).order_by(Grant.id)
    if not include_revoked:
        query = query.where(Grant.status.not_in([GrantStatus.REVOKED, GrantStatus.EXPIRED]))
    grant_ids = step.event.context.get("grant_ids")
    if level_id is not None:
        query = query.where(Grant.level_id == level_id)
    elif grant_ids:
        query = query.where(Grant.id.in_([int(i) for i in grant_ids]))
    elif step.event.level is not None:
        query = query.where(Grant.level_id == step.event.level.id)
    elif step.event.trigger in (Trigger.PAYMENT_FAILED, Trigger.PAYMENT_RECOVERED):
        pass  # narrowed by the caller to past-due / payment-failed grants
    else:
        return []
    return list(session.scalars(query).unique())


def revoke_level(session: Session, step: Step, action: dict) -> dict:
    held = _event_grants(session, step, action.get("level_id"))
    if action.get("level_id") is None and step.event.trigger == Trigger.PAYMENT_FAILED \
            and not step.event.context.get("grant_ids") and step.event.level is None:
        held = [g for g in held if g.status == GrantStatus.PAST_DUE]
    reason = action.get("reason") or f"automation rule #{step.rule.id}"
    days = action.get("after_days")
    if action.get("after_grace_days"):
        days = step.grace_days(session)
    if days:
        when = timeutil.now() + timedelta(days=days)
        # A revocation already scheduled (a cancel at the period's end, an earlier failed payment) stands.
        scheduled = grants.schedule_revocation(session, held, when, reason, keep_existing=True)
        already = [g for g in held if g not in scheduled and g.revoke_at is not None]
        outcome = "scheduled" if scheduled else ("already_scheduled" if already else "no_grants")
        return {"grant_ids": [g.id for g in scheduled], "already_scheduled": [g.id for g in already],
                "revoke_at": when.isoformat(), "reason": reason, "outcome": outcome}
    revoked = grants.revoke(session, held, reason, depth=step.event.depth + 1)
    return {"grant_ids": [g.id for g in revoked], "reason": reason, "outcome": "revoked" if revoked else "no_grants"}


def restore_access(session: Session, step: Step, action: dict) -> dict:
    """Undo what a failed payment did: past-due back to active, a pending grace revocation cancelled, and a
    grant revoked because the grace period ran out opened again."""
    restored = grants.restore(session, _event_grants(session, step, action.get("level_id"), include_revoked=True))
    return {"grant_ids": [g.id for g in restored], "outcome": "restored" if restored else "nothing_to_restore"}


def _levels_for_email(session: Session, step: Step) -> list[str]:
    level_ids = step.event.context.get("level_ids")
    if level_ids:
        levels = session.scalars(select(Level).where(Level.id.in_(level_ids)).order_by(Level.id))
        return list(dict.fromkeys(level.name for level in levels))
    if step.event.level is not None:
        return [step.event.level.name]
    return [level.name for level in services.levels_with_access(session, step.member.id)]


def send_email(session: Session, step: Step, action: dict) -> dict:
    member = step.member
    kind = catalog.get(action["template"])
    values = {
        "member_name": member.name or "there",
        "login_url": services.login_url(member, purpose="welcome"),
        "levels": _levels_for_email(session, step),
        "card_update_url": step.card_update_url(session),
        "grace_days": step.grace_days(session),
    }
    if action.get("subject") is not None:
        text_values = {
            "member_name": values["member_name"],
            "member_email": member.email,
            "site_name": current_app.config["SITE_NAME"],
            "site_url": current_app.config["SITE_URL"],
            "login_url": values["login_url"],
            "tag": step.event.row.tag or "",
            "level": step.event.level.name if step.event.level else "",
            "product_id": step.event.row.product_id or "",
        }
        values["message_subject"] = placeholders.substitute(action["subject"], text_values)
        values["message_body"] = placeholders.substitute(action.get("body") or "", text_values)
    context = {key: values[key] for key in kind.required if key in values}
    email = email_services.enqueue(session, kind.name, member.email, context,
                                   dedupe_key=f"automation:run:{step.run.id}:{step.index}", member_id=member.id)
    return {"template": kind.name, "email_id": email.id if email else None,
            "outcome": "queued" if email else "already_queued"}


def send_webhook(session: Session, step: Step, action: dict) -> dict:
    endpoint = session.get(WebhookEndpoint, action["endpoint_id"])
    if endpoint is None:
        raise ActionFailed(f"Webhook endpoint {action['endpoint_id']} no longer exists.")
    delivery = webhooks.create_delivery(session, endpoint, step.event.trigger,
                                        webhooks.event_payload(session, step.event, rule=step.rule),
                                        event_id=step.event.row.id)
    return {"endpoint_id": endpoint.id, "delivery_id": delivery.id, "outcome": "queued"}


HANDLERS: dict[str, Callable[[Session, Step, dict], dict]] = {
    "add_tag": add_tag,
    "remove_tag": remove_tag,
    "grant_level": grant_level,
    "revoke_level": revoke_level,
    "restore_access": restore_access,
    "send_email": send_email,
    "send_webhook": send_webhook,
}
