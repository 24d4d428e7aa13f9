"""The group-commit receiver: deliveries that arrive together are fulfilled together, in one transaction.

A webhook request authenticates and parses its delivery, then hands it to its process's batcher and waits.
Whichever waiting request finds the batcher idle leads: it takes everything waiting (up to ``MAX_BATCH``),
fulfils it with ``services.receive_many`` in its own session (members, grants, tags, automation events and
emails: one statement per step for the whole batch), commits once, and gives every request its own answer.
Meanwhile new deliveries gather for the next leader. A request on its own is a batch of one and leads at once,
so it waits for nobody; under load a commit (and its round trips) is shared by everyone who arrived during the
previous one.

A batch that fails is rolled back and its deliveries received again one at a time, each in its own
transaction, so one bad delivery never fails its neighbours (alone, a delivery's processing failure is stored
as ``failed``, as it always was). Locks and ordering are ``receive_many``'s: every order's advisory lock is
held while its batch commits, and deliveries about the same order, buyer or subscription are applied in
arrival order.
"""

from __future__ import annotations

import functools
import threading
import time
from dataclasses import dataclass

from flask import Flask, current_app, g
from sqlalchemy import select
from sqlalchemy.orm import Session

import observability
from fulfillment import services
from fulfillment.models import Integration

# Enough to share one commit among every request a busy process holds; small enough that a batch's statements
# stay short (each is a multi-row VALUES list) and a retry one by one stays quick.
MAX_BATCH = 64
# How long a leader waits for deliveries already being read by this process's other threads, at most. A request
# alone never waits: nobody else is arriving.
LINGER_SECONDS = 0.003


@dataclass(frozen=True)
class Answer:
    """What a delivery's request answers: the stored event's status and id."""
    status: str
    event_id: int


class _Waiting:
    def __init__(self, integration_id: int, delivery: services.Delivery):
        self.integration_id = integration_id
        self.delivery = delivery
        self.answer: Answer | None = None
        self.error: BaseException | None = None
        self.done = False


class Batcher:
    """One per app: the deliveries waiting in this process and whether a request is fulfilling a batch."""

    def __init__(self, max_batch: int = MAX_BATCH):
        self.max_batch = max_batch
        self._changed = threading.Condition()
        self._waiting: list[_Waiting] = []
        self._leading = False
        self._arriving = 0  # requests in a receiver that have not handed their delivery over yet

    def arrive(self) -> None:
        with self._changed:
            self._arriving += 1

    def leave(self) -> None:
        """A request that arrived will hand nothing over (refused, or not an order)."""
        with self._changed:
            self._arriving -= 1
            self._changed.notify_all()

    def waiting(self) -> int:
        """How many deliveries wait for a leader (for /metrics-style introspection and tests)."""
        with self._changed:
            return len(self._waiting)

    def fulfil(self, session: Session, delivery: services.Delivery) -> Answer:
        """Store and process ``delivery`` with whatever else is waiting; returns once its batch has committed.

        A request that must wait ends its transaction first (its reads are done), so it holds no connection and
        no snapshot meanwhile; a request that leads at once carries on in its own session and transaction."""
        mine = _Waiting(delivery.integration.id, delivery)
        with self._changed:
            self._waiting.append(mine)
            if g.pop(_ARRIVED, False):
                self._arriving -= 1
            self._changed.notify_all()
            lead_now = not self._leading
            if lead_now:
                self._leading = True
        if not lead_now:
            session.rollback()
        while True:
            with self._changed:
                if not lead_now:
                    while self._leading and not mine.done:
                        self._changed.wait()
                    if mine.done:
                        break
                    self._leading = True
                lead_now = False
                self._gather()
                batch, self._waiting = self._waiting[:self.max_batch], self._waiting[self.max_batch:]
            try:
                _fulfil(session, batch)
            finally:
                with self._changed:
                    self._leading = False
                    self._changed.notify_all()
        if mine.error is not None:
            raise mine.error
        assert mine.answer is not None
        return mine.answer

    def _gather(self) -> None:
        """Called holding the lock: give deliveries that this process is reading right now a moment to join."""
        deadline = time.monotonic() + LINGER_SECONDS
        while self._arriving > 0 and len(self._waiting) < self.max_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._changed.wait(left)


_ARRIVED = "coursegate_batch_arrived"


def receiver(view):
    """For a webhook view: while it reads and authenticates its delivery, a leader knows one more is coming."""

    @functools.wraps(view)
    def counted(*args, **kwargs):
        receiving = batcher()
        receiving.arrive()
        g.setdefault(_ARRIVED, True)
        try:
            return view(*args, **kwargs)
        finally:
            if g.pop(_ARRIVED, False):  # it handed nothing over
                receiving.leave()

    return counted


def _fulfil(session: Session, batch: list[_Waiting]) -> None:
    observability.FULFILMENT_BATCH_SIZE.observe(len(batch))
    try:
        _commit(session, batch)
    except Exception as error:  # noqa: BLE001 - answered below, one by one
        session.rollback()
        if len(batch) == 1:
            _settle(batch[0], error=error)
            return
        for item in batch:  # one bad delivery must not fail its neighbours
            try:
                _commit(session, [item])
            except Exception as alone:  # noqa: BLE001 - this request answers it (500)
                session.rollback()
                _settle(item, error=alone)
    except BaseException as error:  # the leader's thread is ending: nobody may wait for it forever
        for item in batch:
            if not item.done:
                _settle(item, error=error)
        raise


def _commit(session: Session, batch: list[_Waiting]) -> None:
    integrations = _integrations(session, {item.integration_id for item in batch})
    deliveries = [services.Delivery(integrations[item.integration_id], item.delivery.event, item.delivery.body,
                                    item.delivery.content_type, item.delivery.headers) for item in batch]
    rows = services.receive_many(session, deliveries)
    # Read before the commit: it expires every object, and reading one afterwards would cost a query each.
    answers = [Answer(str(row.status), row.id) for row in rows]
    session.commit()
    for item, answer in zip(batch, answers):
        _settle(item, answer=answer)


def _integrations(session: Session, ids: set[int]) -> dict[int, Integration]:
    """The batch's integrations in the leader's session (each request read its own in its own session)."""
    found = {i: session.get(Integration, i) for i in ids if session.identity_map.get(
        session.identity_key(Integration, i)) is not None}
    missing = ids - found.keys()
    if missing:
        found.update((integration.id, integration) for integration in session.scalars(
            select(Integration).where(Integration.id.in_(missing))))
    return found


def _settle(item: _Waiting, *, answer: Answer | None = None, error: BaseException | None = None) -> None:
    item.answer, item.error, item.done = answer, error, True


def batcher(app: Flask | None = None) -> Batcher:
    return (app or current_app).extensions["coursegate_batcher"]


def init_app(app: Flask) -> None:
    app.extensions["coursegate_batcher"] = Batcher(app.config.get("COURSEGATE_FULFILMENT_BATCH", MAX_BATCH))
