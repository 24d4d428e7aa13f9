"""Cart events -> grants. Store first, then process; the functions flush and never commit (when the first
processing of a delivery fails, ``receive`` rolls back its work and stores the delivery again as ``failed``).

``receive`` stores a delivery (deduplicated by a unique key) and processes it in the same transaction;
``replay`` processes a stored event again (after the owner added a rule, say). Processing is idempotent:
a grant is keyed by its order line (unique in the database), refunds and cancellations are kept as
:class:`OrderAdjustment` rows so they also apply to an order that arrives after them, and the welcome
email is queued only for a member this delivery created.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app
from sqlalchemy import Integer, String, and_, bindparam, func, null, or_, select, union_all
from sqlalchemy.orm import Session, aliased

import signals
import timeutil
from errors import CoursegateError
from fulfillment import clients, keap_post, parsers
from fulfillment.errors import EventNotReplayable, IntegrationNotFound
from fulfillment.models import (AdjustmentKind, CancelAccess, EventStatus, Integration, IntegrationKind,
                                OrderAdjustment, WebhookEvent)
from fulfillment.parsers import Action, Line, OrderEvent
from fulfillment.parsers import keap as keap_parser
from fulfillment.rules import levels_for_items
from membership import access_emails, grants
from membership import services as membership
from membership.errors import InvalidEmail
from membership.grants import RevokeReason
from membership.models import Grant, GrantSourceKind, GrantStatus, Level, Member
from sqlutil import advisory_xact_lock, advisory_xact_locks, attach, insert_ignoring_conflicts, update_objects

logger = logging.getLogger(__name__)


# --- receiving ----------------------------------------------------------------------------------------

EVENT_KEY = ("integration_id", "dedupe_key")


@dataclass
class Delivery:
    """One authenticated cart delivery: what it says, and what is stored of it (secrets removed)."""
    integration: Integration
    event: OrderEvent
    body: str
    content_type: str
    headers: dict


def receive(session: Session, integration: Integration, event: OrderEvent, *, body: str, content_type: str,
            headers: dict) -> WebhookEvent:
    """Store one authenticated delivery, then process it. A redelivery is stored as ``duplicate``."""
    return receive_many(session, [Delivery(integration, event, body, content_type, headers)])[0]


def receive_many(session: Session, deliveries: list[Delivery]) -> list[WebhookEvent]:
    """Store deliveries, then process them, in the caller's transaction: one statement per step for the whole
    batch (the group-commit receiver, ``fulfillment.batches``; one delivery is a batch of one).

    Each order's advisory lock is taken before anything is stored, all of them in one statement, in one order,
    so two processes never deadlock on them. Deliveries that touch the same order, buyer or subscription are
    processed one after another in arrival order, as if they had come in separate transactions.

    A failure while processing one delivery of a batch of one rolls its work back and stores it again as
    ``failed`` (a cart's retry replays it). In a bigger batch it is raised and nothing is kept: the caller rolls
    back and receives each delivery alone, so one bad delivery never fails its neighbours."""
    values = [_stored_values(delivery) for delivery in deliveries]
    locks = sorted({key for key in (_order_lock_key(d.integration.id, d.event.order_ref) for d in deliveries)
                    if key})
    if len(deliveries) > 1:
        advisory_xact_locks(session, locks)
    inserted = insert_ignoring_conflicts(session, WebhookEvent, EVENT_KEY, values,
                                         returning=("id", "integration_id", "dedupe_key"),
                                         advisory_lock=locks[0] if len(deliveries) == 1 and locks else None)
    ids = _ids_by_key(inserted)
    rows: list[WebhookEvent | None] = []
    for delivery, row_values in zip(deliveries, values):
        key = (row_values["integration_id"], row_values["dedupe_key"])
        found = ids.get(key)
        rows.append(attach(session, WebhookEvent, {**row_values, "id": found.pop(0)}) if found else None)
    if len(deliveries) == 1 and rows[0] is not None:
        return [_receive_alone(session, deliveries[0], values[0], rows[0])]
    outcomes: dict[int, tuple[str, str | None]] = {}
    for chunk in _independent_chunks([(i, d) for i, (d, row) in enumerate(zip(deliveries, rows)) if row]):
        results = _apply_many(session, [(rows[i], d.integration, d.event) for i, d in chunk])
        outcomes.update((i, outcome) for (i, _), outcome in zip(chunk, results))
    stored, processed, recorded = [], [], []
    for i, (delivery, row_values, row) in enumerate(zip(deliveries, values, rows)):
        if row is None:
            stored.append(_store_duplicate(session, delivery.integration, delivery.event, row_values))
        else:
            stored.append(row)
            processed.append(row)
            recorded.append(_outcome_values(row, *outcomes[i]))
    update_objects(session, processed, recorded)  # every outcome in one UPDATE
    session.flush()
    return stored


def _stored_values(delivery: Delivery) -> dict:
    event, integration = delivery.event, delivery.integration
    return dict(integration_id=integration.id, provider=integration.kind, event_type=event.event_type[:100],
                dedupe_key=event.dedupe_key, duplicate_of_id=None, status=EventStatus.RECEIVED,
                test_mode=event.test_mode, email=_short((event.email or "").strip().lower(), 320),
                order_ref=_short(event.order_ref, 100), customer_ref=_short(event.customer_ref, 100),
                content_type=delivery.content_type[:100], body=delivery.body, headers=delivery.headers, attempts=0,
                last_error=None, received_at=timeutil.now(), processed_at=None)


def _ids_by_key(inserted) -> dict[tuple, list[int]]:
    """The ids of the rows stored, by (integration, dedupe key); a delivery without a key is never a duplicate,
    so those come back in the order they were given."""
    ids: dict[tuple, list[int]] = {}
    for row in inserted:
        ids.setdefault((row.integration_id, row.dedupe_key), []).append(row.id)
    return ids


def _receive_alone(session: Session, delivery: Delivery, values: dict, row: WebhookEvent) -> WebhookEvent:
    integration, event = delivery.integration, delivery.event
    try:
        status, message = _apply_many(session, [(row, integration, event)])[0]
    except Exception as error:
        # Nothing of this delivery is kept but the record of it: roll back and store it again as failed.
        status, message = _failure(error, integration)
        session.expunge(row)  # its row is rolled back; the id may be handed out again
        session.rollback()
        stored = insert_ignoring_conflicts(session, WebhookEvent, EVENT_KEY, [values])
        if not stored:  # a concurrent delivery of the same event got in meanwhile
            return _store_duplicate(session, integration, event, values)
        row = attach(session, WebhookEvent, {**values, "id": stored[0].id})
    return _finish(session, row, status, message)


def _touches(delivery: Delivery) -> set[tuple]:
    """What a delivery may read or change that another one could too: its order, its buyer, its subscriptions."""
    event, integration_id = delivery.event, delivery.integration.id
    keys = {("order", integration_id, event.order_ref), ("customer", integration_id, event.customer_ref),
            ("email", (event.email or "").strip().lower())}
    keys |= {("subscription", integration_id, ref) for ref in
             [event.subscription_ref, *(line.subscription_ref for line in event.lines)]}
    return {key for key in keys if key[-1]}


def _independent_chunks(items: list[tuple[int, Delivery]]) -> list[list[tuple[int, Delivery]]]:
    """Split a batch, keeping its order, where a delivery touches what an earlier one in the chunk touches."""
    chunks: list[list[tuple[int, Delivery]]] = []
    touched: set[tuple] = set()
    for item in items:
        keys = _touches(item[1])
        if not chunks or keys & touched:
            chunks.append([])
            touched = set()
        chunks[-1].append(item)
        touched |= keys
    return chunks


def _store_duplicate(session: Session, integration: Integration, event: OrderEvent, values: dict) -> WebhookEvent:
    original = session.scalar(select(WebhookEvent).where(WebhookEvent.integration_id == integration.id,
                                                         WebhookEvent.dedupe_key == event.dedupe_key))
    duplicate = WebhookEvent(**{**values, "dedupe_key": None, "status": EventStatus.DUPLICATE,
                                "duplicate_of_id": original.id if original else None,
                                "processed_at": timeutil.now()})
    session.add(duplicate)
    session.flush()
    if original is not None and original.status == EventStatus.FAILED:
        # The cart retried something that failed on our side: this retry is the replay.
        process(session, original, integration, event)
        duplicate.last_error = f"Retried event {original.id}: {original.status}."
        session.flush()
    return duplicate


def _short(value: str | None, length: int) -> str | None:
    return value[:length] if value else None


def _failure(error: Exception, integration: Integration) -> tuple[str, str]:
    if isinstance(error, InvalidEmail):
        return EventStatus.NEEDS_ATTENTION, error.message
    if isinstance(error, CoursegateError):
        return EventStatus.FAILED, f"{error.code}: {error.message}"
    # A bug or a database error: keep the delivery, show the owner, let it be replayed.
    logger.exception("a webhook event of integration %s failed", integration.id)
    return EventStatus.FAILED, f"{type(error).__name__}: {error}"


def _finish(session: Session, row: WebhookEvent, status: str, message: str | None) -> WebhookEvent:
    _record_outcome(row, status, message)
    session.flush()
    return row


def _record_outcome(row: WebhookEvent, status: str, message: str | None) -> WebhookEvent:
    for key, value in _outcome_values(row, status, message).items():
        setattr(row, key, value)
    return row


def _outcome_values(row: WebhookEvent, status: str, message: str | None) -> dict:
    return {"attempts": row.attempts + 1, "status": status, "last_error": message[:1000] if message else None,
            "processed_at": timeutil.now()}


def process(session: Session, row: WebhookEvent, integration: Integration, event: OrderEvent) -> WebhookEvent:
    """Apply ``event`` to a stored row (replays, retries) inside a savepoint: on an error its changes are
    undone and the row records ``failed`` with ``last_error``."""
    try:
        with session.begin_nested():
            status, message = _apply_many(session, [(row, integration, event)])[0]
    except Exception as error:
        status, message = _failure(error, integration)
    return _finish(session, row, status, message)


Applied = tuple[WebhookEvent, Integration, OrderEvent]


def _apply_many(session: Session, items: list[Applied]) -> list[tuple[str, str | None]]:
    """Each stored delivery's ``(status, message)``. The orders among them are fulfilled together; the rest
    (refunds, cancellations, rebills, Keap posts: rarer, and each about grants that exist) one by one."""
    results: list[tuple[str, str | None] | None] = [None] * len(items)
    orders: list[int] = []
    for i, (row, integration, event) in enumerate(items):
        if event.action == Action.IGNORED:
            results[i] = (EventStatus.IGNORED, event.note)
        elif event.test_mode and not integration.accept_test_orders:
            results[i] = (EventStatus.IGNORED, "Test-mode delivery: recorded, nothing granted (the integration "
                                               "does not accept test orders).")
        elif event.problem:
            results[i] = (EventStatus.NEEDS_ATTENTION, event.problem)
        elif event.action == Action.ORDER_COMPLETED:
            orders.append(i)
        else:
            results[i] = HANDLERS[event.action](session, row, integration, event)
    for i, outcome in zip(orders, _orders_completed(session, [items[i] for i in orders])):
        results[i] = outcome
    return results  # type: ignore[return-value]


# --- orders ---------------------------------------------------------------------------------------------

def _levels_for_lines(session: Session, integration: Integration, lines: list[Line]) -> list[list[Level]]:
    """Each line's levels; a Stripe line may be mapped by its product (price as option) or by its price."""
    items = [(line.item_type, line.product_id, line.pricing_option_id) for line in lines]
    alternatives = [(line.item_type, line.alt_product_id, None) for line in lines if line.alt_product_id]
    found = levels_for_items(session, integration.id, items + alternatives)
    primary, fallback = found[:len(lines)], iter(found[len(lines):])
    result = []
    for line, levels in zip(lines, primary):
        alternative = next(fallback) if line.alt_product_id else []
        result.append(levels or alternative)
    return result


def _order_lock_key(integration_id: int, order_ref: str | None) -> str | None:
    return f"coursegate-order:{integration_id}:{order_ref}" if order_ref else None


def _lock_order(session: Session, integration: Integration, order_ref: str | None) -> None:
    """Serialise an order with its refunds and cancellations when they arrive at the same moment: whichever
    commits second sees the other. ``receive`` takes the lock as it stores the delivery."""
    key = _order_lock_key(integration.id, order_ref)
    if key:
        advisory_xact_lock(session, key)


def _adjustments(session: Session, integration: Integration, order_refs: set[str],
                 subscription_refs: set[str]) -> list[OrderAdjustment]:
    """Refunds and cancellations recorded for these orders or their subscriptions (perhaps before they
    arrived)."""
    conditions = []
    if order_refs:
        conditions.append(OrderAdjustment.order_ref.in_(order_refs))
    if subscription_refs:
        conditions.append(OrderAdjustment.subscription_ref.in_(subscription_refs))
    if not conditions:
        return []
    return list(session.scalars(select(OrderAdjustment).where(
        OrderAdjustment.integration_id == integration.id, or_(*conditions)).order_by(OrderAdjustment.id)))


def _applies_to(adjustment: OrderAdjustment, order_ref: str | None, line: Line) -> bool:
    if adjustment.subscription_ref and adjustment.subscription_ref == line.subscription_ref:
        return True
    return adjustment.order_ref == order_ref and adjustment.line_ref in (None, line.line_ref)


@dataclass
class _Order:
    """An order being fulfilled: its lines sorted into those to grant and those no rule maps."""
    row: WebhookEvent
    integration: Integration
    event: OrderEvent
    outcome: tuple[str, str | None] | None = None
    mapped: list[tuple[Line, list[Level]]] = field(default_factory=list)
    unmapped: list[Line] = field(default_factory=list)
    skipped: int = 0
    cancels: list[OrderAdjustment] = field(default_factory=list)
    member: Member | None = None
    created: bool = False
    note: str | None = None


def _orders_completed(session: Session, items: list[Applied]) -> list[tuple[str, str | None]]:
    """Fulfil completed orders of different buyers together: their adjustments, rules, buyers, grants, events and
    emails each in one statement for all of them."""
    orders = [_Order(row, integration, event) for row, integration, event in items]
    for order in orders:
        order.outcome = _readable(order)
    live = [order for order in orders if order.outcome is None]
    _sort_lines(session, live)
    buying = [order for order in live if order.outcome is None]
    _find_buyers(session, buying)
    buying = [order for order in buying if order.outcome is None]
    granted = _grant_lines(session, buying)
    for order in buying:
        for opened, line in granted[id(order)]:
            cancel = next((c for c in order.cancels if _applies_to(c, order.event.order_ref, line)), None)
            if cancel is not None:
                _cancel(session, [session.get(Grant, opened.grant_id)], cancel.effective_at)
    _announce_lines(session, [(order, granted[id(order)]) for order in buying])
    access_emails.queue_order_emails(session, [access_emails.OrderEmails(
        member=order.member, levels=_levels_granted(order, granted[id(order)]), created=order.created,
        access_added_email=order.integration.access_added_email,
        event_key=f"order:{order.integration.id}:{order.event.order_ref}") for order in buying])
    for order in buying:
        if order.unmapped:
            order.outcome = (EventStatus.NEEDS_ATTENTION, _unmapped_message(order.unmapped, partial=True))
            continue
        notes = [order.note] if order.note else []
        if order.skipped:
            notes.append(f"{order.skipped} refunded item(s) not granted.")
        order.outcome = (EventStatus.PROCESSED, " ".join(notes) or None)
    return [order.outcome for order in orders]  # type: ignore[misc]


def _readable(order: _Order) -> tuple[str, str] | None:
    """Why an order cannot be fulfilled as it is (None when it can). A Stripe session's items are read here."""
    event, integration = order.event, order.integration
    if event.checkout_session_id and not event.lines:
        if not integration.api_key:
            return EventStatus.NEEDS_ATTENTION, ("This Stripe integration has no api_key, so the session's line "
                                                 "items cannot be read. Add one and replay the event.")
        items = clients.checkout_line_items(integration, event.checkout_session_id)
        event.lines = parsers.stripe_lines(items, event.subscription_ref)
    if not event.order_ref:
        return EventStatus.NEEDS_ATTENTION, "The order has no order id."
    return None


def _sort_lines(session: Session, orders: list[_Order]) -> None:
    """Drop the lines refunded before the order arrived, keep the cancellations to apply, and find each
    remaining line's levels: one query for the adjustments and one for the rules, per integration."""
    for integration, group in _by_integration(orders):
        for order in group:
            _lock_order(session, integration, order.event.order_ref)
        adjustments = _adjustments(session, integration, {o.event.order_ref for o in group},
                                   {line.subscription_ref for o in group for line in o.event.lines
                                    if line.subscription_ref})
        kept = []
        for order in group:
            order_ref = order.event.order_ref
            refunds = [a for a in adjustments if a.kind == AdjustmentKind.REFUND and a.order_ref == order_ref]
            order.cancels = [a for a in adjustments if a.kind == AdjustmentKind.CANCEL]
            lines = [line for line in order.event.lines if not any(_applies_to(a, order_ref, line) for a in refunds)]
            order.skipped = len(order.event.lines) - len(lines)
            kept.append(lines)
        found = iter(_levels_for_lines(session, integration, [line for lines in kept for line in lines]))
        for order, lines in zip(group, kept):
            for line in lines:
                levels = next(found)
                (order.mapped.append((line, levels)) if levels else order.unmapped.append(line))
            if not order.mapped:
                order.outcome = ((EventStatus.PROCESSED, "Every item of this order was refunded before the order "
                                                         "arrived.") if not order.unmapped else
                                 (EventStatus.NEEDS_ATTENTION, _unmapped_message(order.unmapped, partial=False)))


def _by_integration(orders: list[_Order]) -> list[tuple[Integration, list[_Order]]]:
    groups: dict[int, tuple[Integration, list[_Order]]] = {}
    for order in orders:
        groups.setdefault(order.integration.id, (order.integration, []))[1].append(order)
    return list(groups.values())


def _levels_granted(order: _Order, granted: list[tuple[grants.OpenedLine, Line]]) -> list[Level]:
    levels_by_id = {level.id: level for _, levels in order.mapped for level in levels}
    return [levels_by_id[i] for i in dict.fromkeys(opened.level_id for opened, _ in granted)]


def _announce_lines(session: Session, granted: list[tuple[_Order, list[tuple[grants.OpenedLine, Line]]]]) -> None:
    """Announce each bought item granted (the automations hear ``order_completed``; a rule may filter on its
    product or any of its levels), for every order at once. Keyed on the order line, so a redelivered or
    replayed order never runs a rule twice."""
    events = []
    for order, lines in granted:
        by_line: dict[str, tuple[Line, list[int], list[int]]] = {}
        for opened, line in lines:
            _, grant_ids, level_ids = by_line.setdefault(line.line_ref, (line, [], []))
            grant_ids.append(opened.grant_id)
            level_ids.append(opened.level_id)
        key = f"order:{order.integration.id}:{order.event.order_ref}"
        events += [dict(member=order.member, event_key=f"{key}:{line_ref}", level=level_ids[0],
                        product_id=line.product_id, integration_id=order.integration.id,
                        context={"grant_ids": grant_ids, "level_ids": level_ids, "order_id": order.event.order_ref,
                                 "line": line_ref})
                   for line_ref, (line, grant_ids, level_ids) in by_line.items()]
    if events:
        signals.order_lines_granted.send(session, events=events)


def _find_buyers(session: Session, orders: list[_Order]) -> None:
    """Each order's member: by email (any case); else, when the cart says this is a buyer it has seen under
    another email (same customer id), that member; else a new one. One query finds them all (per integration)
    and one statement creates the new ones."""
    wanted: list[tuple[_Order, str]] = []
    for order in orders:
        try:
            wanted.append((order, membership.normalise_email(order.event.email)))
        except InvalidEmail as error:
            order.outcome = (EventStatus.NEEDS_ATTENTION, error.message)
    new: dict[str, str] = {}
    for integration, group in _by_integration([order for order, _ in wanted]):
        emails = {order.row.id: email for order, email in wanted if order.integration.id == integration.id}
        known, first_seen = _members_and_customers(session, integration, list(emails.values()),
                                                   {o.event.customer_ref for o in group if o.event.customer_ref})
        for order in group:
            email = emails[order.row.id]
            exact = known.get(email)
            if exact is not None:
                if not order.event.customer_ref and (order.event.name or "").strip() and not exact.name:
                    exact.name = order.event.name.strip()
                order.member = exact
                continue
            earlier = next((m for m in first_seen.get(order.event.customer_ref, []) if m.email != email), None)
            if earlier is not None:
                order.member = earlier
                order.note = (f"Same cart customer as {earlier.email}: granted to that member instead of creating "
                              f"a second account for {email}.")
                continue
            new.setdefault(email, order.event.name or "")
    created = membership.create_or_find_members(session, new)  # looked them up already
    for order, email in wanted:
        if order.member is None and order.outcome is None:
            order.member, order.created = created[email]
            if order.created:  # the first order of a batch for a new email creates them; any other finds them
                created[email] = (order.member, False)


def _members_and_customers(session: Session, integration: Integration, emails: list[str],
                           customer_refs: set[str]) -> tuple[dict[str, Member], dict[str, list[Member]]]:
    """In one query: the members with these emails, and for each cart customer id the members it was
    processed under before, earliest first."""
    if not customer_refs:
        return membership.members_by_email(session, emails), {}
    statement, member = _buyers_statement()
    rows = session.execute(statement, {"emails": emails, "integration_id": integration.id,
                                       "customer_refs": list(customer_refs)}).all()
    wanted = set(emails)
    known = {found.email: found for found, _, _ in rows if found.email in wanted}
    first_seen: dict[str, list[tuple[int, Member]]] = {}
    for found, customer_ref, first_id in rows:
        if customer_ref is not None:
            first_seen.setdefault(customer_ref, []).append((first_id, found))
    return known, {ref: [m for _, m in sorted(found, key=lambda pair: pair[0])] for ref, found in first_seen.items()}


@functools.cache
def _buyers_statement():
    """Built once (a statement object keeps its cache key; building this one anew cost a millisecond a batch).
    Two branches, so each finds its members by the email index: an OR of both made PostgreSQL scan them all."""
    seen = (select(WebhookEvent.customer_ref, WebhookEvent.email, func.min(WebhookEvent.id).label("first_id"))
            .where(WebhookEvent.integration_id == bindparam("integration_id"),
                   WebhookEvent.customer_ref.in_(bindparam("customer_refs", expanding=True)),
                   WebhookEvent.status == EventStatus.PROCESSED.value, WebhookEvent.email.is_not(None))
            .group_by(WebhookEvent.customer_ref, WebhookEvent.email).subquery())
    found = union_all(
        select(Member.__table__, null().cast(String).label("seen_customer_ref"),
               null().cast(Integer).label("seen_first_id"))
        .where(Member.email.in_(bindparam("emails", expanding=True))),
        select(Member.__table__, seen.c.customer_ref, seen.c.first_id).join(seen, seen.c.email == Member.email),
    ).subquery()
    member = aliased(Member, found)
    return select(member, found.c.seen_customer_ref, found.c.seen_first_id), member


def _unmapped_message(lines: list[Line], *, partial: bool) -> str:
    items = ", ".join(f"{line.line_ref}" + (f" (pricing option {line.pricing_option_id})"
                                            if line.pricing_option_id else "") for line in lines)
    done = "The other items were granted. " if partial else "No account was created. "
    return f"No fulfillment rule maps {items}. {done}Add a rule, then replay this event."


def _grant_lines(session: Session, orders: list[_Order]) -> dict[int, list[tuple[grants.OpenedLine, Line]]]:
    """One grant per (order line, level) for every order, in one statement; what an earlier or concurrent
    delivery of the same order already granted is skipped, so a second ``order.success`` adds only what is new.
    Returns, by ``id(order)``, the grants opened with their lines."""
    starts_at = timeutil.now()
    rows, line_of = [], {}
    for order in orders:
        for line, levels in order.mapped:
            for level in levels:
                key = (order.integration.id, order.event.order_ref, line.line_ref, level.id)
                line_of[key] = (order, line)
                rows.append(grants.new_grant_values(
                    member_id=order.member.id, level=level, starts_at=starts_at, source_kind=GrantSourceKind.ORDER,
                    integration_id=order.integration.id, order_ref=order.event.order_ref, line_ref=line.line_ref,
                    subscription_ref=line.subscription_ref))
    granted: dict[int, list[tuple[grants.OpenedLine, Line]]] = {id(order): [] for order in orders}
    for opened in grants.open_lines(session, rows):
        order, line = line_of[(opened.integration_id, opened.order_ref, opened.line_ref, opened.level_id)]
        granted[id(order)].append((opened, line))
    return granted


# --- refunds and cancellations ----------------------------------------------------------------------------

def _record_adjustment(session: Session, row: WebhookEvent, integration: Integration, kind: str,
                       event: OrderEvent, effective_at: datetime | None = None) -> None:
    line_ref = event.lines[0].line_ref if event.lines else None
    session.add(OrderAdjustment(integration_id=integration.id, kind=kind, order_ref=event.order_ref,
                                line_ref=line_ref, subscription_ref=event.subscription_ref,
                                effective_at=effective_at, event_id=row.id))
    session.flush()


def _line_refunded(session: Session, row: WebhookEvent, integration: Integration,
                   event: OrderEvent) -> tuple[str, str | None]:
    _lock_order(session, integration, event.order_ref)
    _record_adjustment(session, row, integration, AdjustmentKind.REFUND, event)
    query = select(Grant).where(Grant.integration_id == integration.id, Grant.order_ref == event.order_ref,
                                Grant.status != GrantStatus.REVOKED)
    if event.lines:
        query = query.where(Grant.line_ref == event.lines[0].line_ref)
    refunded = list(session.scalars(query))
    grants.revoke(session, refunded, RevokeReason.REFUNDED)
    if refunded:
        line_ref = event.lines[0].line_ref if event.lines else "order"
        signals.order_line_refunded.send(
            session, member=refunded[0].member, level=refunded[0].level_id,
            event_key=f"refund:{integration.id}:{event.order_ref}:{line_ref}", integration_id=integration.id,
            product_id=event.lines[0].product_id if event.lines else None,
            context={"grant_ids": [g.id for g in refunded], "level_ids": [g.level_id for g in refunded],
                     "order_id": event.order_ref, "line": line_ref})
    if not refunded:
        return EventStatus.PROCESSED, ("No grant for this order line yet: the refund is recorded and the line "
                                       "will not be granted when the order arrives.")
    return EventStatus.PROCESSED, None


def _subscription_grants(session: Session, integration: Integration, event: OrderEvent,
                         statuses: tuple[str, ...]) -> list[Grant]:
    conditions = []
    if event.subscription_ref:
        conditions.append(Grant.subscription_ref == event.subscription_ref)
    if event.order_ref and event.lines:
        conditions.append(and_(Grant.order_ref == event.order_ref, Grant.line_ref == event.lines[0].line_ref))
    elif event.order_ref and not event.subscription_ref:
        conditions.append(Grant.order_ref == event.order_ref)
    if not conditions:
        return []
    return list(session.scalars(select(Grant).where(
        Grant.integration_id == integration.id, Grant.status.in_([str(s) for s in statuses]), or_(*conditions)
    ).order_by(Grant.id)))


def _cancel(session: Session, held: list[Grant], effective_at: datetime | None) -> None:
    """A cancelled subscription: revoke at the end of the paid period when it is ahead, else now."""
    if effective_at is not None and effective_at > timeutil.now():
        grants.schedule_revocation(session, held, effective_at, RevokeReason.CANCELLED)
    else:
        grants.revoke(session, held, RevokeReason.CANCELLED)


def _subscription_cancelled(session: Session, row: WebhookEvent, integration: Integration,
                            event: OrderEvent) -> tuple[str, str | None]:
    effective_at = None
    if integration.cancel_access == CancelAccess.PERIOD_END and event.effective_at:
        effective_at = event.effective_at
    _lock_order(session, integration, event.order_ref)
    _record_adjustment(session, row, integration, AdjustmentKind.CANCEL, event, effective_at)
    cancelled = _subscription_grants(session, integration, event, grants.OPEN_STATUSES)
    _cancel(session, cancelled, effective_at)
    _announce_for_subscription(session, signals.subscription_cancelled, row, integration, cancelled,
                               effective_at=effective_at.isoformat() if effective_at else None)
    if effective_at is not None and effective_at > timeutil.now():  # access runs to the end of the period
        _announce_for_subscription(session, signals.cancel_scheduled, row, integration, cancelled,
                                   access_until=effective_at.isoformat())
    if not cancelled:
        return EventStatus.PROCESSED, ("No grant for this subscription yet: the cancellation is recorded and "
                                       "applies when the order arrives.")
    return EventStatus.PROCESSED, None


# --- rebills ------------------------------------------------------------------------------------------------

def card_update_url(integration: Integration) -> str:
    return integration.card_update_url or f"{current_app.config['SITE_URL']}/account"


def _payment_failed(session: Session, row: WebhookEvent, integration: Integration,
                    event: OrderEvent) -> tuple[str, str | None]:
    """Access is kept but marked past due. What follows (the tag, the email with the card link, the revocation
    once the grace days are over) is the owner's default failed-payment automation, which they can edit."""
    held = _subscription_grants(session, integration, event, (GrantStatus.ACTIVE, GrantStatus.PAST_DUE))
    if not held:
        return EventStatus.PROCESSED, "No active grant for this subscription."
    grants.mark_past_due(session, held)
    _announce_for_subscription(session, signals.payment_failed, row, integration, held,
                               card_update_url=card_update_url(integration), grace_days=integration.grace_days)
    return EventStatus.PROCESSED, None


def _announce_for_subscription(session: Session, signal, row: WebhookEvent, integration: Integration,
                               about: list[Grant], **context) -> None:
    if not about:
        return
    signal.send(session, member=about[0].member, level=about[0].level_id, event_key=f"webhook:{row.id}",
                integration_id=integration.id,
                context={"grant_ids": [g.id for g in about], "level_ids": [g.level_id for g in about], **context})


def _payment_succeeded(session: Session, row: WebhookEvent, integration: Integration,
                       event: OrderEvent) -> tuple[str, str | None]:
    renewed = _subscription_grants(session, integration, event,
                                   (GrantStatus.ACTIVE, GrantStatus.PAST_DUE, GrantStatus.EXPIRED))
    # Held back by the failed payment: past due now, or revoked when the grace days ran out.
    recovered = [g for g in renewed if g.status == GrantStatus.PAST_DUE] + [
        g for g in _subscription_grants(session, integration, event, (GrantStatus.REVOKED,))
        if g.revoke_reason == RevokeReason.PAYMENT_FAILED]
    grants.renew(session, renewed)
    # The default automation removes the payment-failed tag and reopens what the grace period closed.
    _announce_for_subscription(session, signals.payment_recovered, row, integration, recovered)
    return EventStatus.PROCESSED, None if renewed or recovered else "No grant for this subscription."


def _paused(session: Session, row: WebhookEvent, integration: Integration,
            event: OrderEvent) -> tuple[str, str | None]:
    paused = grants.pause(session, _subscription_grants(session, integration, event,
                                                        (GrantStatus.ACTIVE, GrantStatus.PAST_DUE)))
    _announce_for_subscription(session, signals.subscription_paused, row, integration, paused)
    return EventStatus.PROCESSED, None if paused else "No active grant for this subscription."


def _resumed(session: Session, row: WebhookEvent, integration: Integration,
             event: OrderEvent) -> tuple[str, str | None]:
    resumed = grants.resume(session, _subscription_grants(session, integration, event, (GrantStatus.PAUSED,)))
    _announce_for_subscription(session, signals.subscription_resumed, row, integration, resumed)
    return EventStatus.PROCESSED, None if resumed else "No paused grant for this subscription."


HANDLERS = {
    Action.KEAP_POST: keap_post.apply,
    Action.LINE_REFUNDED: _line_refunded,
    Action.SUBSCRIPTION_CANCELLED: _subscription_cancelled,
    Action.PAYMENT_FAILED: _payment_failed,
    Action.PAYMENT_SUCCEEDED: _payment_succeeded,
    Action.SUBSCRIPTION_PAUSED: _paused,
    Action.SUBSCRIPTION_RESUMED: _resumed,
}


# --- replay ---------------------------------------------------------------------------------------------------------

def parse_stored(row: WebhookEvent) -> OrderEvent:
    body = row.body.encode("utf-8")
    if row.provider == IntegrationKind.THRIVECART:
        return parsers.thrivecart_event(parsers.decode_thrivecart(body, row.content_type))
    if row.provider == IntegrationKind.STRIPE:
        return parsers.stripe_event(parsers.decode_json(body))
    if row.provider == IntegrationKind.KEAP:
        return keap_parser.event(keap_parser.decode(body, row.content_type))
    return parsers.generic_event(parsers.decode_json(body))


def stored_payload(row: WebhookEvent) -> dict:
    """The stored body as a tree (the secret was removed before storing)."""
    body = row.body.encode("utf-8")
    if row.provider == IntegrationKind.THRIVECART:
        return parsers.decode_thrivecart(body, row.content_type)
    if row.provider == IntegrationKind.KEAP:
        return keap_parser.payload(body, row.content_type)
    return parsers.decode_json(body)


def replay(session: Session, row: WebhookEvent) -> WebhookEvent:
    """Process a stored event again: for ``needs_attention`` (after a rule was added), ``failed`` or
    ``ignored`` (after test orders were allowed). A duplicate replays its original. Processed events are
    refused: applying them twice would extend a subscription twice."""
    if row.status == EventStatus.DUPLICATE and row.duplicate_of_id is not None:
        row = session.get(WebhookEvent, row.duplicate_of_id) or row
    if row.status in (EventStatus.PROCESSED, EventStatus.DUPLICATE):
        raise EventNotReplayable()
    integration = session.get(Integration, row.integration_id) if row.integration_id else None
    if integration is None:
        raise IntegrationNotFound("The integration that received this event has been deleted.")
    return process(session, row, integration, parse_stored(row))


def event_ids_with_status(session: Session, status: str, *, integration_id: int | None = None) -> list[int]:
    query = select(WebhookEvent.id).where(WebhookEvent.status == status).order_by(WebhookEvent.id)
    if integration_id is not None:
        query = query.where(WebhookEvent.integration_id == integration_id)
    return list(session.scalars(query))
