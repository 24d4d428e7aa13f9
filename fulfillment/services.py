"""Cart events -> grants. Store first, then process; the functions flush and never commit (when the first
processing of a delivery fails, ``receive`` rolls back its work and stores the delivery again as ``failed``).

``receive`` stores a delivery (deduplicated by a unique key) and processes it in the same transaction;
``replay`` processes a stored event again (after the owner added a rule, say). Processing is idempotent:
a grant is keyed by its order line (unique in the database), refunds and cancellations are kept as
:class:`OrderAdjustment` rows so they also apply to an order that arrives after them, and the welcome
email is queued only for a member this delivery created.
"""

from __future__ import annotations

import logging
from datetime import datetime

from flask import current_app
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

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
from sqlutil import advisory_xact_lock, attach, insert_ignoring_conflicts

logger = logging.getLogger(__name__)


# --- receiving ----------------------------------------------------------------------------------------

EVENT_KEY = ("integration_id", "dedupe_key")


def receive(session: Session, integration: Integration, event: OrderEvent, *, body: str, content_type: str,
            headers: dict) -> WebhookEvent:
    """Store one authenticated delivery, then process it. A redelivery is stored as ``duplicate``."""
    values = dict(integration_id=integration.id, provider=integration.kind, event_type=event.event_type[:100],
                  dedupe_key=event.dedupe_key, duplicate_of_id=None, status=EventStatus.RECEIVED,
                  test_mode=event.test_mode, email=_short((event.email or "").strip().lower(), 320),
                  order_ref=_short(event.order_ref, 100), customer_ref=_short(event.customer_ref, 100),
                  content_type=content_type[:100], body=body,
                  headers=headers, attempts=0, last_error=None, received_at=timeutil.now(), processed_at=None)
    inserted = insert_ignoring_conflicts(session, WebhookEvent, EVENT_KEY, [values],
                                         advisory_lock=_order_lock_key(integration.id, event.order_ref))
    if not inserted:
        return _store_duplicate(session, integration, event, values)
    row = attach(session, WebhookEvent, {**values, "id": inserted[0].id})
    try:
        status, message = _apply(session, row, integration, event)
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
    row.attempts += 1
    row.status = status
    row.last_error = message[:1000] if message else None
    row.processed_at = timeutil.now()
    session.flush()
    return row


def process(session: Session, row: WebhookEvent, integration: Integration, event: OrderEvent) -> WebhookEvent:
    """Apply ``event`` to a stored row (replays, retries) inside a savepoint: on an error its changes are
    undone and the row records ``failed`` with ``last_error``."""
    try:
        with session.begin_nested():
            status, message = _apply(session, row, integration, event)
    except Exception as error:
        status, message = _failure(error, integration)
    return _finish(session, row, status, message)


def _apply(session: Session, row: WebhookEvent, integration: Integration,
           event: OrderEvent) -> tuple[str, str | None]:
    if event.action == Action.IGNORED:
        return EventStatus.IGNORED, event.note
    if event.test_mode and not integration.accept_test_orders:
        return EventStatus.IGNORED, ("Test-mode delivery: recorded, nothing granted (the integration does not "
                                     "accept test orders).")
    if event.problem:
        return EventStatus.NEEDS_ATTENTION, event.problem
    handler = HANDLERS[event.action]
    return handler(session, row, integration, event)


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


def _adjustments(session: Session, integration: Integration, order_ref: str | None,
                 subscription_refs: set[str]) -> list[OrderAdjustment]:
    """Refunds and cancellations recorded for this order or its subscriptions (perhaps before it arrived)."""
    conditions = []
    if order_ref:
        conditions.append(OrderAdjustment.order_ref == order_ref)
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


def _order_completed(session: Session, row: WebhookEvent, integration: Integration,
                     event: OrderEvent) -> tuple[str, str | None]:
    if event.checkout_session_id and not event.lines:
        if not integration.api_key:
            return EventStatus.NEEDS_ATTENTION, ("This Stripe integration has no api_key, so the session's line "
                                                 "items cannot be read. Add one and replay the event.")
        items = clients.checkout_line_items(integration, event.checkout_session_id)
        event.lines = parsers.stripe_lines(items, event.subscription_ref)
    if not event.order_ref:
        return EventStatus.NEEDS_ATTENTION, "The order has no order id."

    _lock_order(session, integration, event.order_ref)
    adjustments = _adjustments(session, integration, event.order_ref,
                               {line.subscription_ref for line in event.lines if line.subscription_ref})
    refunds = [a for a in adjustments if a.kind == AdjustmentKind.REFUND and a.order_ref == event.order_ref]
    cancels = [a for a in adjustments if a.kind == AdjustmentKind.CANCEL]
    lines = [line for line in event.lines if not any(_applies_to(a, event.order_ref, line) for a in refunds)]
    skipped = len(event.lines) - len(lines)
    mapped: list[tuple[Line, list[Level]]] = []
    unmapped: list[Line] = []
    for line, levels in zip(lines, _levels_for_lines(session, integration, lines)):
        if levels:
            mapped.append((line, levels))
        else:
            unmapped.append(line)
    if not mapped:
        if not unmapped:
            return EventStatus.PROCESSED, "Every item of this order was refunded before the order arrived."
        return EventStatus.NEEDS_ATTENTION, _unmapped_message(unmapped, partial=False)

    member, created, note = _buyer(session, integration, event)
    granted = _grant_lines(session, member, integration, event, mapped)
    for grant_id, _, line in granted:
        cancel = next((c for c in cancels if _applies_to(c, event.order_ref, line)), None)
        if cancel is not None:
            _cancel(session, [session.get(Grant, grant_id)], cancel.effective_at)
    _announce_lines(session, member, integration, event, granted, key=f"order:{integration.id}:{event.order_ref}")
    levels_by_id = {level.id: level for _, levels in mapped for level in levels}
    access_emails.queue_order_emails(
        session, member, [levels_by_id[i] for i in dict.fromkeys(level_id for _, level_id, _ in granted)],
        created=created, access_added_email=integration.access_added_email,
        event_key=f"order:{integration.id}:{event.order_ref}")
    if unmapped:
        return EventStatus.NEEDS_ATTENTION, _unmapped_message(unmapped, partial=True)
    notes = [note] if note else []
    if skipped:
        notes.append(f"{skipped} refunded item(s) not granted.")
    return EventStatus.PROCESSED, " ".join(notes) or None


def _announce_lines(session: Session, member: Member, integration: Integration, event: OrderEvent,
                    granted: list[tuple[int, int, Line]], *, key: str) -> None:
    """Announce each bought item granted (the automations hear ``order_completed``; a rule may filter on its
    product or any of its levels). Keyed on the order line, so a redelivered or replayed order never runs a
    rule twice."""
    by_line: dict[str, tuple[Line, list[int], list[int]]] = {}
    for grant_id, level_id, line in granted:
        _, grant_ids, level_ids = by_line.setdefault(line.line_ref, (line, [], []))
        grant_ids.append(grant_id)
        level_ids.append(level_id)
    for line_ref, (line, grant_ids, level_ids) in by_line.items():
        signals.order_line_granted.send(
            session, member=member, event_key=f"{key}:{line_ref}", level=level_ids[0], product_id=line.product_id,
            integration_id=integration.id,
            context={"grant_ids": grant_ids, "level_ids": level_ids, "order_id": event.order_ref, "line": line_ref})


def _buyer(session: Session, integration: Integration, event: OrderEvent) -> tuple[Member, bool, str | None]:
    """The member for this order: by email (any case); else, when the cart says this is a buyer it has seen
    under another email (same customer id), that member; else a new one. Returns (member, created, note)."""
    email = membership.normalise_email(event.email)
    if event.customer_ref:
        earlier = (select(WebhookEvent.email)
                   .where(WebhookEvent.integration_id == integration.id,
                          WebhookEvent.customer_ref == event.customer_ref,
                          WebhookEvent.status == EventStatus.PROCESSED,
                          WebhookEvent.email.is_not(None), WebhookEvent.email != email)
                   .order_by(WebhookEvent.id).limit(1).scalar_subquery())
        found = session.scalars(select(Member).where(or_(Member.email == email, Member.email == earlier))).all()
        exact = next((m for m in found if m.email == email), None)
        if exact is None and found:
            return found[0], False, (f"Same cart customer as {found[0].email}: granted to that member instead of "
                                     f"creating a second account for {email}.")
        if exact is not None:
            return exact, False, None
        member, created = membership.create_or_find_member(session, email, name=event.name)  # looked already
        return member, created, None
    member, created = membership.find_or_create_member(session, email, name=event.name)
    return member, created, None


def _unmapped_message(lines: list[Line], *, partial: bool) -> str:
    items = ", ".join(f"{line.line_ref}" + (f" (pricing option {line.pricing_option_id})"
                                            if line.pricing_option_id else "") for line in lines)
    done = "The other items were granted. " if partial else "No account was created. "
    return f"No fulfillment rule maps {items}. {done}Add a rule, then replay this event."


def _grant_lines(session: Session, member: Member, integration: Integration, event: OrderEvent,
                 mapped: list[tuple[Line, list[Level]]]) -> list[tuple[int, int, Line]]:
    """One grant per (order line, level), in one statement; what an earlier or concurrent delivery of the same
    order already granted is skipped, so a second ``order.success`` adds only what is new."""
    starts_at = timeutil.now()
    rows, line_of = [], {}
    for line, levels in mapped:
        for level in levels:
            line_of[(line.line_ref, level.id)] = line
            rows.append(grants.new_grant_values(
                member_id=member.id, level=level, starts_at=starts_at, source_kind=GrantSourceKind.ORDER,
                integration_id=integration.id, order_ref=event.order_ref, line_ref=line.line_ref,
                subscription_ref=line.subscription_ref))
    return [(grant_id, level_id, line_of[(line_ref, level_id)])
            for grant_id, line_ref, level_id in grants.open_lines(session, rows)]


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
    Action.ORDER_COMPLETED: _order_completed,
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
