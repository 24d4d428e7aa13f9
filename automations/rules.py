"""Owner-defined automation rules: validation (including loop detection), CRUD, and the default set."""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import timeutil
from automations import placeholders
from automations.actions import EMAIL_CONTEXT
from automations.active import DEFAULTS_MARKER
from automations.errors import AutomationLoop, InvalidRule, RuleNotFound
from automations.models import (TRIGGERS, AutomationRule, AutomationRun, AutomationSetting, Trigger,
                                WebhookEndpoint)
from automations.schemas import ACTION_SCHEMAS
from emails import catalog
from errors import CoursegateError
from membership.grants import RevokeReason
from membership.models import Level

RULE_FIELDS = ("name", "trigger", "level_id", "product_id", "tag", "actions", "enabled")
TAG_TRIGGERS = (Trigger.TAG_ADDED, Trigger.TAG_REMOVED)
AUTOMATION_MESSAGE = "automation_message"

logger = logging.getLogger(__name__)

# The failed-payment flow from the carts, as rules the owner can edit.
DEFAULT_RULES = {
    "payment_failed": {
        "name": "Failed payment: tag, email the card link, revoke after the grace period",
        "trigger": Trigger.PAYMENT_FAILED,
        "actions": [
            {"type": "add_tag", "tag": "payment-failed"},
            {"type": "send_email", "template": "payment_failed"},
            {"type": "revoke_level", "after_grace_days": True, "reason": RevokeReason.PAYMENT_FAILED.value},
        ],
    },
    "payment_recovered": {
        "name": "Payment recovered: remove the tag and restore access",
        "trigger": Trigger.PAYMENT_RECOVERED,
        "actions": [
            {"type": "remove_tag", "tag": "payment-failed"},
            {"type": "restore_access"},
        ],
    },
}


def get_rule(session: Session, rule_id: int) -> AutomationRule:
    rule = session.get(AutomationRule, rule_id)
    if rule is None:
        raise RuleNotFound()
    return rule


# --- validation ------------------------------------------------------------------------------------

def _check_references(session: Session, data: dict) -> None:
    errors: dict = {}
    if data.get("level_id") is not None and session.get(Level, data["level_id"]) is None:
        errors["level_id"] = [f"No access level has id {data['level_id']}."]
    action_errors: dict = {}
    for index, action in enumerate(data.get("actions") or []):
        problems = _action_problems(session, action)
        if problems:
            action_errors[str(index)] = problems
    if action_errors:
        errors["actions"] = action_errors
    if errors:
        raise InvalidRule("The automation rule refers to things that do not exist or are not allowed.",
                          errors=errors)


def _action_problems(session: Session, action: dict) -> dict:
    kind = action["type"]
    problems: dict = {}
    if kind in ("grant_level", "revoke_level", "restore_access") and action.get("level_id") is not None \
            and session.get(Level, action["level_id"]) is None:
        problems["level_id"] = [f"No access level has id {action['level_id']}."]
    if kind == "send_webhook" and session.get(WebhookEndpoint, action["endpoint_id"]) is None:
        problems["endpoint_id"] = [f"No webhook endpoint has id {action['endpoint_id']}."]
    if kind == "send_email":
        name = action["template"]
        if name not in catalog.CATALOG:
            problems["template"] = [f"No email template {name!r}; use one of: {', '.join(sorted(catalog.CATALOG))}."]
            return problems
        missing = catalog.get(name).required - EMAIL_CONTEXT
        if missing:
            problems["template"] = [(f"The {name!r} email needs {', '.join(sorted(missing))}, which an "
                                     "automation cannot provide.")]
        if name == AUTOMATION_MESSAGE:
            for field in ("subject", "body"):
                if not action.get(field):
                    problems[field] = ["Required for the automation_message email."]
                else:
                    found = placeholders.problems(action[field])
                    if found:
                        problems[field] = found
        else:
            for field in ("subject", "body"):
                if field in action:
                    problems[field] = [f"Only the {AUTOMATION_MESSAGE} email takes an owner-written {field}."]
    return problems


def _emits(rule: dict) -> list[tuple[str, str | None, int | None, str]]:
    """The events a rule's actions can fire: (trigger, tag, level_id, description)."""
    emitted = []
    for action in rule["actions"]:
        if action["type"] == "add_tag":
            emitted.append((Trigger.TAG_ADDED, action["tag"], None, f"adds tag '{action['tag']}'"))
        elif action["type"] == "remove_tag":
            emitted.append((Trigger.TAG_REMOVED, action["tag"], None, f"removes tag '{action['tag']}'"))
        elif action["type"] == "revoke_level":
            level = action.get("level_id")
            emitted.append((Trigger.GRANT_REVOKED, None, level,
                            f"revokes level {level}" if level else "revokes the event's access"))
    return emitted


def _hears(rule: dict, trigger: str, tag: str | None, level_id: int | None) -> bool:
    """Could this rule run on an event an action fires? Conservative: unknowns count as a match."""
    if rule["trigger"] != trigger:
        return False
    if trigger in TAG_TRIGGERS and rule.get("tag") is not None and tag is not None and rule["tag"] != tag:
        return False
    return not (trigger == Trigger.GRANT_REVOKED and rule.get("level_id") is not None and level_id is not None
                and rule["level_id"] != level_id)


def find_loop(candidate: dict, others: list[dict]) -> list[tuple[dict, str]] | None:
    """A path of (rule, what it does) from ``candidate`` back to itself through the enabled rules, if any."""
    rules = [candidate, *others]

    def visit(rule: dict, path: list[tuple[dict, str]], seen: set[int]) -> list[tuple[dict, str]] | None:
        for trigger, tag, level_id, what in _emits(rule):
            for nxt in rules:
                if not _hears(nxt, trigger, tag, level_id):
                    continue
                step = [*path, (rule, what)]
                if nxt is candidate:
                    return step
                if id(nxt) in seen:
                    continue
                found = visit(nxt, step, seen | {id(nxt)})
                if found:
                    return found
        return None

    return visit(candidate, [], {id(candidate)})


def _check_loops(session: Session, data: dict, rule_id: int | None) -> None:
    if not data.get("enabled", True):
        return
    others = [
        {"id": r.id, "name": r.name, "trigger": r.trigger, "tag": r.tag, "level_id": r.level_id, "actions": r.actions}
        for r in session.scalars(select(AutomationRule).where(AutomationRule.enabled.is_(True)))
        if r.id != rule_id
    ]
    loop = find_loop(data, others)
    if loop is None:
        return
    steps = [f"rule '{rule['name']}' {what}" for rule, what in loop]
    message = ("This rule would loop: " + ", which triggers ".join(steps) + f", which triggers rule "
               f"'{data['name']}' again. Change a tag, a filter, or disable one of the rules.")
    raise AutomationLoop(message, errors={"actions": [message],
                                          "loop": [rule.get("id") or "this rule" for rule, _ in loop]})


def validate(session: Session, data: dict, rule_id: int | None = None) -> None:
    _check_references(session, data)
    _check_loops(session, data, rule_id)


# --- CRUD ------------------------------------------------------------------------------------------

def create_rule(session: Session, data: dict, *, default_key: str | None = None) -> AutomationRule:
    data = {k: data.get(k) for k in RULE_FIELDS} | {"enabled": data.get("enabled", True)}
    validate(session, data)
    rule = AutomationRule(default_key=default_key, **data)
    session.add(rule)
    session.flush()
    return rule


def update_rule(session: Session, rule: AutomationRule, changes: dict) -> AutomationRule:
    merged = {field: changes.get(field, getattr(rule, field)) for field in RULE_FIELDS}
    validate(session, merged, rule.id)
    for field in RULE_FIELDS:
        if field in changes:
            setattr(rule, field, changes[field])
    session.flush()
    return rule


def delete_rule(session: Session, rule: AutomationRule) -> None:
    """Delete a rule; its runs stay in the log (with the rule's name, no longer linked to it)."""
    session.execute(update(AutomationRun).where(AutomationRun.rule_id == rule.id).values(rule_id=None))
    session.delete(rule)
    session.flush()


# --- the default set -------------------------------------------------------------------------------

def install_defaults(session: Session, *, restore: bool = True) -> list[AutomationRule]:
    """Create the default rules that are missing. Idempotent. Returns the rules created.

    ``restore=False`` (first use) creates nothing once the set was installed before, so a default the owner
    deleted stays deleted; the CLI restores missing defaults.
    """
    if not restore and session.get(AutomationSetting, DEFAULTS_MARKER) is not None:
        return []
    created = []
    existing = set(session.scalars(select(AutomationRule.default_key).where(AutomationRule.default_key.is_not(None))))
    for key, spec in DEFAULT_RULES.items():
        if key in existing:
            continue
        try:
            with session.begin_nested():
                created.append(create_rule(session, {**spec, "enabled": True}, default_key=key))
        except IntegrityError:  # a concurrent first use created it
            continue
        except CoursegateError as exc:  # the owner's rules make this default invalid: leave it out, say why
            logger.warning("default automation %s not installed: %s", key, exc.message)
    if session.get(AutomationSetting, DEFAULTS_MARKER) is None:
        try:
            with session.begin_nested():
                session.add(AutomationSetting(key=DEFAULTS_MARKER, value=timeutil.now().isoformat()))
                session.flush()
        except IntegrityError:
            pass
    return created


def ensure_defaults(session: Session) -> None:
    """On first use the default set appears by itself. Checked once per session (a request, a job)."""
    if session.info.get(DEFAULTS_MARKER):
        return
    if session.get(AutomationSetting, DEFAULTS_MARKER) is None:
        install_defaults(session, restore=False)
    else:
        session.info[DEFAULTS_MARKER] = True


def rule_catalog() -> dict:
    """What a rule editor needs to know: triggers, action types with their fields, usable emails, placeholders."""
    emails = [{"name": kind.name, "description": kind.description,
               "owner_text": kind.name == AUTOMATION_MESSAGE}
              for kind in sorted(catalog.CATALOG.values(), key=lambda k: k.name)
              if kind.required <= EMAIL_CONTEXT]
    return {
        "triggers": list(TRIGGERS),
        "actions": {name: [f for f in schema().fields if f != "type"] for name, schema in ACTION_SCHEMAS.items()},
        "emails": emails,
        "placeholders": dict(placeholders.ALLOWED),
    }
