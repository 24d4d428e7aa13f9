"""Every change in a grant's life, and nothing else writes a grant's status, dates or revocation fields.

A grant is one reason a member holds a level. Its life:

    open ──> active ──past due──> past_due ──renew / restore──> active
               │  ▲                  │
         pause │  │ resume           └── grace over (scheduled revocation) ──> revoked ──restore──> active
               ▼  │
             paused            any open grant ──revoke──> revoked ──reopen──> active

The grace period is one model for cart rebills and our own billing: a past-due grant keeps its access until
a revocation scheduled with the reason ``payment_failed`` falls due (``revoke_at``; a cart's default
automation schedules it after the integration's grace days, billing schedules it itself), and paying,
or the owner's recovery rule, cancels it. ``run_due_revocations`` carries out whatever is due.

Each operation takes a session and many grants at once and changes them with one statement per step (the
single delivery is the batch of one); the grants loaded in the session take the new values without a reload.
Functions flush and never commit. They announce what they did with the signals in ``signals.py``
(``grants_opened``, ``grants_changed``, ``grants_revoked``); what follows (automations, emails) listens there.
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from sqlalchemy import bindparam, exists, insert, literal, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

import signals
import timeutil
from errors import Conflict, Unprocessable
from membership.errors import GrantAlreadyRevoked
from membership.models import Grant, GrantSourceKind, GrantStatus, Level, Member
from sqlutil import insert_ignoring_conflicts

logger = logging.getLogger(__name__)


class RevokeReason(enum.StrEnum):
    """The reasons the service itself gives; an owner or a rule may give any other text."""

    REFUNDED = "refunded"
    CANCELLED = "cancelled"
    PAYMENT_FAILED = "payment_failed"  # a grace period ran out, or our own billing's retries did
    KEAP_REVOKE = "keap_revoke"
    SCHEDULED = "scheduled"  # a scheduled revocation that carried no reason


# Statuses a grant can still be revoked, paused or cancelled from.
OPEN_STATUSES = (GrantStatus.ACTIVE, GrantStatus.PAST_DUE, GrantStatus.PAUSED, GrantStatus.EXPIRED)
ORDER_LINE_KEY = ("integration_id", "order_ref", "line_ref", "level_id")  # uq_grants_order_line_level
_IN_CHUNK = 500  # ids per IN (...) list: well inside every database's limit on bound parameters


def ends_for(level: Level, starts_at: datetime, *, days: int | None = None) -> datetime | None:
    """When a grant of ``level`` starting at ``starts_at`` ends: after ``days`` if given, else the level's
    own duration, else never."""
    days = days or level.duration_days
    return starts_at + timedelta(days=days) if days else None


def new_grant_values(*, member_id: int, level: Level, starts_at: datetime, source_kind: str,
                     ends_at: datetime | None = None, days: int | None = None, integration_id: int | None = None,
                     order_ref: str | None = None, line_ref: str | None = None,
                     subscription_ref: str | None = None, mandate_id: int | None = None,
                     note: str | None = None) -> dict:
    """The row of a new grant: active from ``starts_at`` to ``ends_at`` (else :func:`ends_for`)."""
    return dict(member_id=member_id, level_id=level.id, status=GrantStatus.ACTIVE.value, starts_at=starts_at,
                ends_at=ends_at if ends_at is not None else ends_for(level, starts_at, days=days),
                source_kind=str(source_kind), integration_id=integration_id, order_ref=order_ref,
                line_ref=line_ref, subscription_ref=subscription_ref, mandate_id=mandate_id,
                note=note[:500] if note else None, created_at=starts_at, updated_at=starts_at)


# --- opening ------------------------------------------------------------------------------------------------

def open_grant(session: Session, member: Member, level: Level, *, source_kind: str = GrantSourceKind.MANUAL,
               starts_at: datetime | None = None, ends_at: datetime | None = None,
               integration_id: int | None = None, order_ref: str | None = None, line_ref: str | None = None,
               subscription_ref: str | None = None, mandate_id: int | None = None,
               note: str | None = None) -> Grant:
    """Give ``member`` the level (the owner, a rule, a subscription). A level with a duration ends that many
    days after the start unless told otherwise."""
    values = new_grant_values(member_id=member.id, level=level, starts_at=starts_at or timeutil.now(),
                              source_kind=source_kind, ends_at=ends_at, integration_id=integration_id,
                              order_ref=order_ref, line_ref=line_ref, subscription_ref=subscription_ref,
                              mandate_id=mandate_id, note=note)
    grant = Grant(member=member, level=level, **{k: v for k, v in values.items() if k not in ("member_id",
                                                                                          "level_id")})
    session.add(grant)
    session.flush()
    signals.grants_opened.send(session, grant_ids=[grant.id], member_ids=[member.id])
    return grant


class OpenedLine(NamedTuple):
    grant_id: int
    integration_id: int | None
    order_ref: str | None
    line_ref: str | None
    level_id: int


def open_lines(session: Session, rows: list[dict]) -> list[OpenedLine]:
    """Open one grant per (order line, level) in one statement; ``rows`` from :func:`new_grant_values`, for one
    order or a batch of them.

    The order line's unique key skips what an earlier or concurrent delivery of the same order already
    granted, so a second delivery adds only what is new. Returns the grants opened now."""
    if not rows:
        return []
    inserted = insert_ignoring_conflicts(session, Grant, ORDER_LINE_KEY, rows,
                                         returning=("id", "integration_id", "order_ref", "line_ref", "level_id"))
    opened = [OpenedLine(*row) for row in inserted]
    if opened:
        signals.grants_opened.send(session, grant_ids=[line.grant_id for line in opened],
                                   member_ids=sorted({row["member_id"] for row in rows}))
    return opened


def open_for_members(session: Session, member_ids, level: Level, *, source_kind: str, note: str | None = None,
                     execution_options: dict | None = None) -> int:
    """Open ``level`` for every member in ``member_ids`` (ids, or a subquery of them) who cannot open it now, in one
    ``INSERT ... SELECT`` (an owner's bulk grant over a search). Returns how many grants were opened."""
    now = timeutil.now()
    holds = exists().where(Grant.member_id == Member.id, Grant.level_id == level.id, Grant.gives_access_at(now))
    stamp = Grant.starts_at.type
    rows = select(Member.id, literal(level.id), literal(GrantStatus.ACTIVE.value), literal(now, type_=stamp),
                  literal(ends_for(level, now), type_=stamp), literal(str(source_kind)),
                  literal(note[:500] if note else None), literal(now, type_=stamp), literal(now, type_=stamp)) \
        .where(Member.id.in_(member_ids), ~holds)
    # Like an import, a bulk change announces nothing: it runs no automations and sends no email.
    return session.execute(insert(Grant.__table__).from_select(
        ["member_id", "level_id", "status", "starts_at", "ends_at", "source_kind", "note", "created_at",
         "updated_at"], rows), execution_options=execution_options or {}).rowcount


def insert_imported(session: Session, rows: list[dict], *, insert_rows=None) -> None:
    """Open imported grants in bulk (``rows`` from :func:`new_grant_values`). ``insert_rows(session, table,
    rows)`` lets the importer use its fastest path (COPY on PostgreSQL); else one executemany INSERT."""
    if not rows:
        return
    if insert_rows is not None:
        insert_rows(session, Grant.__table__, rows)
    else:
        session.execute(insert(Grant.__table__), rows)


# --- changing -----------------------------------------------------------------------------------------------

def _chunks(items: Sequence, size: int = _IN_CHUNK) -> Iterable[Sequence]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _set(session: Session, grants: Sequence[Grant], **values) -> None:
    """One UPDATE for these grants (per chunk of ids); the loaded objects take the values without a reload."""
    if not grants:
        return
    values["updated_at"] = timeutil.now()
    for chunk in _chunks(grants):
        session.execute(update(Grant).where(Grant.id.in_([g.id for g in chunk])).values(**values),
                        execution_options={"synchronize_session": False})
    for grant in grants:
        for key, value in values.items():
            set_committed_value(grant, key, value)


def _set_ends(session: Session, new_ends: dict[Grant, datetime]) -> list[Grant]:
    """A different end for each grant: one statement, executed for every row."""
    if not new_ends:
        return []
    moment = timeutil.now()
    table = Grant.__table__
    session.execute(update(table).where(table.c.id == bindparam("grant_id"))
                    .values(ends_at=bindparam("new_end"), updated_at=moment),
                    [{"grant_id": grant.id, "new_end": end} for grant, end in new_ends.items()])
    for grant, end in new_ends.items():
        set_committed_value(grant, "ends_at", end)
        set_committed_value(grant, "updated_at", moment)
    return list(new_ends)


def _changed(session: Session, grants: Sequence[Grant], change: str) -> None:
    if grants:
        signals.grants_changed.send(session, grant_ids=[g.id for g in grants], change=change)


def mark_past_due(session: Session, grants: Sequence[Grant], *, grace_until: datetime | None = None,
                  at: datetime | None = None) -> list[Grant]:
    """A payment failed: active grants become past due (access kept). With ``grace_until`` (our own billing)
    access is kept until then even past the grant's end, and the revocation is scheduled for that moment
    (reason ``payment_failed``); for a cart's rebill the owner's default automation schedules it."""
    moment = at or timeutil.now()
    changed = [g for g in grants if g.status == GrantStatus.ACTIVE]
    _set(session, changed, status=GrantStatus.PAST_DUE.value, past_due_since=moment)
    if grace_until is not None:
        cut_short = [g for g in changed if g.ends_at is None or g.ends_at < grace_until]
        _set(session, cut_short, ends_at=grace_until)
        schedule_revocation(session, changed, grace_until, RevokeReason.PAYMENT_FAILED)
    _changed(session, changed, "past_due")
    return changed


def renew(session: Session, grants: Sequence[Grant], *, ends_at: datetime | None = None,
          at: datetime | None = None) -> list[Grant]:
    """A payment went through: the grants are active again, a grace-period revocation is called off, and
    each runs to ``ends_at`` (our own billing: the end of the paid period) or, when not given, one more
    of its level's duration (a cart's rebill of a time-limited level)."""
    moment = at or timeutil.now()
    if not grants:
        return []
    _set(session, grants, status=GrantStatus.ACTIVE.value, past_due_since=None)
    _call_off_grace(session, grants)
    if ends_at is not None:
        _set(session, grants, ends_at=ends_at)
    else:
        _set_ends(session, {g: max(g.ends_at, moment) + timedelta(days=g.level.duration_days)
                            for g in grants if g.level.duration_days and g.ends_at is not None})
    _changed(session, grants, "renewed")
    return list(grants)


def _call_off_grace(session: Session, grants: Sequence[Grant]) -> None:
    _set(session, [g for g in grants if g.scheduled_revoke_reason == RevokeReason.PAYMENT_FAILED],
         revoke_at=None, scheduled_revoke_reason=None)


def held_back_by_payment(grant: Grant) -> bool:
    """Past due, waiting for its grace period to run out, or revoked because it did."""
    return (grant.status == GrantStatus.PAST_DUE
            or (grant.revoke_at is not None and grant.scheduled_revoke_reason == RevokeReason.PAYMENT_FAILED)
            or (grant.status == GrantStatus.REVOKED and grant.revoke_reason == RevokeReason.PAYMENT_FAILED))


def restore(session: Session, grants: Sequence[Grant]) -> list[Grant]:
    """Undo what a failed payment did to these grants: past due back to active, a pending grace revocation
    called off, and a grant revoked because the grace period ran out opened again. Others are left alone."""
    held = [g for g in grants if held_back_by_payment(g)]
    if not held:
        return []
    revoked = [g for g in held if g.status == GrantStatus.REVOKED and g.revoke_reason == RevokeReason.PAYMENT_FAILED]
    _set(session, held, status=GrantStatus.ACTIVE.value, past_due_since=None)
    _set(session, revoked, revoked_at=None, revoke_reason=None)
    _call_off_grace(session, held)
    _changed(session, held, "restored")
    return held


def end_grace(session: Session, grants: Sequence[Grant], *, at: datetime | None = None) -> list[Grant]:
    """The subscription behind past-due grants stopped (our own billing's mandate cancelled): the unpaid
    period was never paid for, so the courtesy grace ends now, with no revocation left pending."""
    moment = at or timeutil.now()
    past_due = [g for g in grants if g.status == GrantStatus.PAST_DUE]
    _set(session, past_due, ends_at=moment)
    _call_off_grace(session, past_due)
    _changed(session, past_due, "extended")
    return past_due


def pause(session: Session, grants: Sequence[Grant]) -> list[Grant]:
    """The subscription is paused: its active or past-due grants stop opening their level."""
    changed = [g for g in grants if g.status in (GrantStatus.ACTIVE, GrantStatus.PAST_DUE)]
    _set(session, changed, status=GrantStatus.PAUSED.value)
    _changed(session, changed, "paused")
    return changed


def resume(session: Session, grants: Sequence[Grant]) -> list[Grant]:
    """Paused grants go back to what they were: past due if a payment was still failing, else active."""
    paused = [g for g in grants if g.status == GrantStatus.PAUSED]
    _set(session, [g for g in paused if g.past_due_since is not None], status=GrantStatus.PAST_DUE.value)
    _set(session, [g for g in paused if g.past_due_since is None], status=GrantStatus.ACTIVE.value)
    _changed(session, paused, "resumed")
    return paused


def shift(session: Session, grants: Sequence[Grant], delta: timedelta) -> list[Grant]:
    """Move the end of each time-limited grant by ``delta`` (a pause of our own billing keeps the days paid for)."""
    changed = _set_ends(session, {g: g.ends_at + delta for g in grants if g.ends_at is not None})
    _changed(session, changed, "extended")
    return changed


def schedule_revocation(session: Session, grants: Sequence[Grant], at: datetime, reason: str, *,
                        keep_existing: bool = False) -> list[Grant]:
    """Decide now to revoke at ``at``. An earlier revocation already scheduled stands; with
    ``keep_existing`` any revocation already scheduled stands. Returns the grants (re)scheduled."""
    chosen = [g for g in grants if g.status not in (GrantStatus.REVOKED, GrantStatus.EXPIRED)
              and (g.revoke_at is None or (not keep_existing and g.revoke_at > at))]
    _set(session, chosen, revoke_at=at, scheduled_revoke_reason=str(reason))
    _changed(session, chosen, "revocation_scheduled")
    return chosen


def revoke(session: Session, grants: Sequence[Grant], reason: str, *, at: datetime | None = None,
           depth: int = 0) -> list[Grant]:
    """Revoke now (grants already revoked are skipped). Announces ``grants_revoked``, which the automations
    hear as ``grant_revoked``; ``depth`` says how deep in a chain of rules this happens."""
    chosen = [g for g in dict.fromkeys(grants) if g.status != GrantStatus.REVOKED]
    if not chosen:
        return []
    _set(session, chosen, status=GrantStatus.REVOKED.value, revoked_at=at or timeutil.now(),
         revoke_reason=str(reason)[:200], revoke_at=None, scheduled_revoke_reason=None)
    signals.grants_revoked.send(session, grants=chosen, reason=str(reason), depth=depth)
    return chosen


def revoke_one(session: Session, grant: Grant, reason: str) -> Grant:
    """The owner revokes one grant (API, admin): refused when it is revoked already."""
    if grant.status == GrantStatus.REVOKED:
        raise GrantAlreadyRevoked()
    revoke(session, [grant], reason)
    return grant


def reopen(session: Session, grants: Sequence[Grant], *, starts_at: datetime,
           ends_at: datetime | None) -> list[Grant]:
    """A revoked or ended grant is given again from ``starts_at`` (the same enrolment posted again)."""
    if not grants:
        return []
    _set(session, grants, status=GrantStatus.ACTIVE.value, starts_at=starts_at, ends_at=ends_at, revoked_at=None,
         revoke_reason=None, revoke_at=None, scheduled_revoke_reason=None, past_due_since=None)
    _changed(session, grants, "reopened")
    return list(grants)


def extend(session: Session, grant: Grant, ends_at: datetime | None) -> Grant:
    """Give a grant a new end (``None``: no end). An expired grant whose new end is ahead opens again."""
    if grant.status == GrantStatus.REVOKED:
        raise Conflict("A revoked grant cannot be extended; grant the level again instead.",
                       code="grant_revoked")
    if ends_at is not None and ends_at <= grant.starts_at:
        raise Unprocessable("The new end must be after the grant's start.", code="invalid_ends_at",
                            errors={"ends_at": ["Must be after the start."]})
    _set(session, [grant], ends_at=ends_at)
    if grant.status == GrantStatus.EXPIRED and (ends_at is None or ends_at > timeutil.now()):
        _set(session, [grant], status=GrantStatus.ACTIVE.value)
    _changed(session, [grant], "extended")
    return grant


# --- the periodic job ---------------------------------------------------------------------------------------

def run_due_revocations(session: Session, *, limit: int = 1000) -> int:
    """Carry out the revocations scheduled for now or earlier (a cancel at the period's end, a grace period
    over), each with its scheduled reason. Rows another run holds are skipped (``SKIP LOCKED``), so two runs at
    once never revoke a grant twice. Flushes, never commits. Returns how many grants were revoked."""
    moment = timeutil.now()
    due = list(session.scalars(
        select(Grant)
        .where(Grant.revoke_at.is_not(None), Grant.revoke_at <= moment,
               Grant.status.not_in([GrantStatus.REVOKED, GrantStatus.EXPIRED]))
        .order_by(Grant.revoke_at, Grant.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Grant)
    ).unique())
    by_reason: dict[str, list[Grant]] = {}
    for grant in due:
        by_reason.setdefault(grant.scheduled_revoke_reason or RevokeReason.SCHEDULED, []).append(grant)
    for reason, grants in by_reason.items():
        revoke(session, grants, reason)
        logger.info("%d grant(s) revoked on schedule (%s): %s", len(grants), reason, [g.id for g in grants])
    return len(due)
