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
from dataclasses import dataclass, replace

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

import observability
from fulfillment import services
from fulfillment.models import Integration

# Enough to share one commit among every request a busy process holds; small enough that a batch's statements
# stay short (each is a multi-row VALUES list) and a retry one by one stays quick.
MAX_BATCH = 64
# How long a leader waits, at most, for deliveries already being read by this process's other threads, or, while
# the process is busy, for as many as it held when its last batch ended. A request alone never waits: nobody else
# is arriving, and a process that was idle, or held one delivery, expects nobody. Under load a transaction per
# batch costs far more than the wait (bench/webhooks.py: batches of 2 at 3 ms, of 6 to 7 at 15 ms, and a
# quarter less CPU per delivery).
LINGER_SECONDS = 0.015
BUSY_SECONDS = 0.1  # a batch that ended this recently says how busy the process is


@dataclass(frozen=True)
class Answer:
    """What a delivery's request answers: the stored event's status and id."""
    status: str
    event_id: int


class _Waiting:
    """A request's delivery until its batch has committed. Its thread sleeps on ``wakeup`` until it is either
    done (answered) or handed the lead (to fulfil the next batch)."""

    def __init__(self, delivery: services.Delivery):
        self.delivery = delivery
        self.answer: Answer | None = None
        self.error: BaseException | None = None
        self.done = False
        self.lead = False
        self.wakeup = threading.Event()


class Batcher:
    """One per app: the deliveries waiting in this process and whether a request is fulfilling a batch.

    Exactly one request leads at a time. When its batch has committed it wakes the requests it answered and
    hands the lead to the oldest delivery still waiting (or gives it up when none is): no thread is woken
    only to find there is nothing for it to do."""

    def __init__(self, max_batch: int = MAX_BATCH):
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # a leader gathering waits on this
        self._waiting: list[_Waiting] = []
        self._leading = False
        self._gathering = False
        self._arriving = 0  # requests in a receiver that have not handed their delivery over yet
        # When the last batch ended, and how many deliveries the process then held: that batch's and those already
        # waiting for the next. While busy, as many are expected again (the answered ones' carts send their next).
        self._held = 0
        self._held_at = 0.0

    def arrive(self) -> None:
        with self._lock:
            self._arriving += 1

    def leave(self) -> None:
        """A request that arrived will hand nothing over (refused, or not an order)."""
        with self._lock:
            self._arriving -= 1
            if self._gathering:
                self._arrived.notify()

    def waiting(self) -> int:
        """How many deliveries wait for a leader (for introspection and tests)."""
        with self._lock:
            return len(self._waiting)

    def fulfil(self, session: Session, delivery: services.Delivery) -> Answer:
        """Store and process ``delivery`` with whatever else is waiting; returns once its batch has committed.

        A request that must wait ends its transaction first (its reads are done; the integration it read is
        kept, detached, for the leader), so it holds no connection and no snapshot meanwhile. A request that
        leads at once carries on in its own session and transaction."""
        mine = _Waiting(delivery)
        with self._lock:
            self._waiting.append(mine)
            if g.pop(_ARRIVED, False):
                self._arriving -= 1
            if self._gathering:
                self._arrived.notify()
            if not self._leading:
                self._leading = mine.lead = True
        if not mine.lead:
            if delivery.integration in session:
                session.expunge(delivery.integration)
            session.rollback()
        while not mine.done:
            if not mine.lead:
                mine.wakeup.wait()
                mine.wakeup.clear()
                continue
            with self._lock:
                self._gather()
                batch, self._waiting = self._waiting[:self.max_batch], self._waiting[self.max_batch:]
            try:
                _fulfil(session, batch)
            finally:
                mine.lead = False
                with self._lock:
                    self._held, self._held_at = len(batch) + len(self._waiting), time.monotonic()
                    successor = self._waiting[0] if self._waiting else None
                    if successor is None:
                        self._leading = False
                    else:
                        successor.lead = True
                for item in batch:
                    if item is not mine:
                        item.wakeup.set()
                if successor is not None and successor is not mine:
                    successor.wakeup.set()
        if mine.error is not None:
            raise mine.error
        assert mine.answer is not None
        return mine.answer

    def _gather(self) -> None:
        """Called holding the lock: give deliveries that this process is reading right now a moment to join, and
        while it is busy (its last batch just ended, with several), as many as that batch held. Under load, the
        requests a batch answered come back a moment apart: without this the first back would lead alone and
        every other batch would be a batch of one, each paying a whole transaction."""
        now = time.monotonic()
        deadline = now + LINGER_SECONDS
        expected = self._held if now - self._held_at < BUSY_SECONDS else 0
        self._gathering = True
        try:
            while ((self._arriving > 0 or len(self._waiting) < expected)
                   and len(self._waiting) < self.max_batch):
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                self._arrived.wait(left)
        finally:
            self._gathering = False


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
    integrations = _integrations(session, batch)
    deliveries = [replace(item.delivery, integration=integrations[item.delivery.integration.id]) for item in batch]
    rows = services.receive_many(session, deliveries)
    # Read before the commit: it expires every object, and reading one afterwards would cost a query each.
    answers = [Answer(str(row.status), row.id) for row in rows]
    session.commit()
    for item, answer in zip(batch, answers):
        _settle(item, answer=answer)


def _integrations(session: Session, batch: list[_Waiting]) -> dict[int, Integration]:
    """The batch's integrations in the leader's session: its own, and the others' as each request read them
    (merged without a query)."""
    found: dict[int, Integration] = {}
    for item in batch:
        integration = item.delivery.integration
        if integration.id not in found:
            found[integration.id] = integration if integration in session else session.merge(integration,
                                                                                             load=False)
    return found


def _settle(item: _Waiting, *, answer: Answer | None = None, error: BaseException | None = None) -> None:
    item.answer, item.error, item.done = answer, error, True


def batcher(app: Flask | None = None) -> Batcher:
    return (app or current_app).extensions["coursegate_batcher"]


def init_app(app: Flask) -> None:
    app.extensions["coursegate_batcher"] = Batcher(app.config.get("COURSEGATE_FULFILMENT_BATCH", MAX_BATCH))
