"""Where every automation starts: :func:`fire` when something happens to a member (``automations.listeners``
calls it for the domain signals other rooms send; the automations' own actions call it directly).

``fire`` records the event once per (trigger, event key), applies the built-in event tag, queues the
outgoing webhooks subscribed to the trigger, and runs every matching enabled rule once. It flushes and
never commits: the caller commits, and emails and webhook deliveries leave after that commit.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import timeutil
from automations import actions, active, rules, tags, webhooks
from automations.events import Event
from automations.models import TRIGGERS, AutomationEvent, AutomationRule, AutomationRun, RunStatus, Trigger
from membership import tags as member_tags
from membership.models import Level, Member
from membership.tags import AppliedBy
from sqlutil import attach, insert_ignoring_conflicts

logger = logging.getLogger(__name__)

# A chain of rules firing rules (tag A adds B, B's rule adds C, ...) stops this deep. Validation rejects
# loops when rules are saved; this is the second guard.
MAX_DEPTH = 8
KEY_MAX = 255


def stable_key(key: str) -> str:
    """Event keys are stored in 255 characters; longer ones keep a readable head and a hash of the whole."""
    if len(key) <= KEY_MAX:
        return key
    return key[:190] + "#" + hashlib.sha256(key.encode()).hexdigest()


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str)) if value is not None else None


def fire(session: Session, trigger: str, *, member: Member, event_key: str, level: Level | int | None = None,
         product_id: str | None = None, integration_id: int | None = None, tag: str | None = None,
         context: dict | None = None, _depth: int = 0) -> AutomationEvent | None:
    """Something happened to ``member``. Returns the recorded event, or None when this key was seen before:
    :func:`fire_many` for one event.

    ``context`` may carry ``grant_ids`` (the grants the event is about), ``card_update_url`` and ``grace_days``
    (else read from the integration), and anything else worth passing to webhooks.
    """
    return fire_many(session, trigger, [dict(member=member, event_key=event_key, level=level, product_id=product_id,
                                             integration_id=integration_id, tag=tag, context=context)],
                     depth=_depth)[0]


def fire_many(session: Session, trigger: str, events: list[dict], *, depth: int = 0) -> list[AutomationEvent | None]:
    """The same thing happened to many members (a batch of orders): each dict holds :func:`fire`'s keyword
    arguments. Records every event in one statement, tags the members in one, then runs each event's rules.
    Returns each event's row, or None where its key was seen before."""
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown trigger {trigger!r}; one of {', '.join(TRIGGERS)}")
    if not events:
        return []
    switched_on = active.get(session)
    if not switched_on.defaults_installed:  # on first use the default set appears by itself
        rules.install_defaults(session, restore=False)
        active.forget(session)
        switched_on = active.get(session)
    moment = timeutil.now()
    prepared = []
    for event in events:
        level, product_id = event.get("level"), event.get("product_id")
        level_obj = session.get(Level, level) if isinstance(level, int) else level
        prepared.append((event, level_obj, {
            "trigger": trigger, "event_key": stable_key(event["event_key"]), "member_id": event["member"].id,
            "level_id": level_obj.id if level_obj else None,
            "product_id": str(product_id) if product_id is not None else None,
            "integration_id": event.get("integration_id"), "tag": event.get("tag"), "depth": depth,
            "context": _jsonable(event.get("context")), "created_at": moment}))
    rows = _record_events(session, [values for _, _, values in prepared])
    recorded = []
    for (event, level_obj, values), row in zip(prepared, rows):
        if row is None:
            logger.info("automation event %s %s seen before; nothing runs twice", trigger, values["event_key"])
            continue
        recorded.append(Event(row=row, member=event["member"], level=level_obj, context=dict(event.get("context") or {})))
    if not recorded:
        return rows

    if depth > MAX_DEPTH:
        logger.warning("automation events %s nested %s deep; rules not run", [e.row.id for e in recorded], depth)
        for event in recorded:
            for rule in _matching_rules(session, event, switched_on):
                _record_run(session, rule, event, status=RunStatus.DEPTH_LIMIT,
                            error=f"Stopped: events nested more than {MAX_DEPTH} deep (a loop between rules?).")
        return rows

    _apply_event_tags(session, recorded, depth)  # first, so a rule's tag filter sees the tag the event applies
    if switched_on.has_endpoints(trigger):
        for event in recorded:
            webhooks.enqueue_for_event(session, event)
    candidates = _enabled_rules(session, trigger, switched_on)
    for event in recorded:
        for rule in candidates:
            if _matches(session, rule, event):
                _run_rule(session, rule, event)
    return rows


def _record_events(session: Session, values: list[dict]) -> list[AutomationEvent | None]:
    """Insert the events whose (trigger, key) is new: one statement, no savepoint. On PostgreSQL a concurrent
    transaction inserting the same key makes this wait for it, then do nothing for that row."""
    if session.get_bind().dialect.name not in ("postgresql", "sqlite"):  # pragma: no cover - other databases
        return [_record_event_apart(session, row) for row in values]
    firsts: dict[tuple[str, str], dict] = {}
    for row in values:  # a key twice in one batch: the first one is the event
        firsts.setdefault((row["trigger"], row["event_key"]), row)
    inserted = {(row.trigger, row.event_key): row.id for row in insert_ignoring_conflicts(
        session, AutomationEvent, ("trigger", "event_key"), list(firsts.values()),
        returning=("id", "trigger", "event_key"))}
    result, used = [], set()
    for row in values:
        key = (row["trigger"], row["event_key"])
        if key in inserted and key not in used:
            used.add(key)
            result.append(attach(session, AutomationEvent, {**row, "id": inserted[key]}))
        else:
            result.append(None)
    return result


def _record_event_apart(session: Session, values: dict) -> AutomationEvent | None:  # pragma: no cover
    row = AutomationEvent(**values)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return None
    return row


def _enabled_rules(session: Session, trigger: str, switched_on: active.Active) -> list[AutomationRule]:
    if not switched_on.has_rules(trigger):
        return []
    return list(session.scalars(
        select(AutomationRule).where(AutomationRule.trigger == trigger, AutomationRule.enabled.is_(True))
        .order_by(AutomationRule.id)
    ))


def _matching_rules(session: Session, event: Event, switched_on: active.Active) -> list[AutomationRule]:
    return [rule for rule in _enabled_rules(session, event.trigger, switched_on) if _matches(session, rule, event)]


def _matches(session: Session, rule: AutomationRule, event: Event) -> bool:
    if rule.level_id is not None:
        # An event may concern several levels (an item that opens two): the rule matches any of them.
        level_ids = set(event.context.get("level_ids") or ([event.level.id] if event.level else []))
        if rule.level_id not in level_ids:
            return False
    if rule.product_id is not None and event.row.product_id != rule.product_id:
        return False
    if rule.tag is not None:
        if event.trigger in (Trigger.TAG_ADDED, Trigger.TAG_REMOVED):
            return event.row.tag == rule.tag
        # For other triggers the tag filter means "the member carries this tag".
        return member_tags.has_tag(session, event.member.id, rule.tag)
    return True


def _apply_event_tags(session: Session, events: list[Event], depth: int) -> None:
    taggings = []
    for event in events:
        name = tags.event_tag_name(session, event.trigger, product_id=event.row.product_id,
                                   integration_id=event.row.integration_id)
        if name is not None:
            taggings.append(member_tags.Tagging(event.member, name, AppliedBy.EVENT, f"{event.trigger} {event.key}",
                                                f"{event.key}>tag", event.row.integration_id))
    member_tags.tag_members(session, taggings, depth=depth + 1)


def _record_run(session: Session, rule: AutomationRule, event: Event, *, status: str = RunStatus.SUCCEEDED,
                error: str | None = None) -> AutomationRun | None:
    run = AutomationRun(rule_id=rule.id, rule_name=rule.name, event_id=event.row.id, event_key=event.key,
                        trigger=event.trigger, member_id=event.member.id, status=status, actions_taken=[],
                        error=error)
    try:
        with session.begin_nested():
            session.add(run)
            session.flush()
    except IntegrityError:  # this rule already ran for this event
        return None
    return run


def _run_rule(session: Session, rule: AutomationRule, event: Event) -> AutomationRun | None:
    run = _record_run(session, rule, event)
    if run is None:
        return None
    taken: list[dict] = []
    current: dict | None = None
    try:
        with session.begin_nested():
            for index, action in enumerate(rule.actions):
                current = {"type": action.get("type")}
                outcome = actions.perform(session, actions.Step(rule=rule, run=run, index=index, event=event),
                                          action)
                taken.append({**current, **outcome})
    except Exception as exc:  # noqa: BLE001 - one broken rule must not fail the event that fired it
        logger.warning("automation rule %s failed on event %s: %s", rule.id, event.row.id, type(exc).__name__)
        message = str(exc) or type(exc).__name__
        for done in taken:  # the savepoint rolled back what the earlier actions did
            done["rolled_back"] = True
        taken.append({**(current or {}), "outcome": "error", "detail": message[:500]})
        run.status = RunStatus.FAILED
        run.error = message[:1000]
    run.actions_taken = taken
    session.flush()
    return run
