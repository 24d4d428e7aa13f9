"""sqlutil: the insert that ignores conflicts (with the advisory lock riding on it) and the lock's bookkeeping."""

from __future__ import annotations

import pytest
from sqlalchemy import text

import timeutil
from membership.tags import Tag
from sqlutil import advisory_xact_lock, insert_ignoring_conflicts


def _tag(name: str) -> dict:
    return {"name": name, "created_at": timeutil.now()}


def _advisory_locks_held(session) -> int:
    return session.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                               "AND pid = pg_backend_pid() AND granted"))


def test_a_locked_insert_inserts_once_and_skips_a_taken_key(session):
    first = insert_ignoring_conflicts(session, Tag, ("name",), [_tag("vip")], advisory_lock="order:1")
    again = insert_ignoring_conflicts(session, Tag, ("name",), [_tag("vip")], advisory_lock="order:1")
    session.commit()
    assert len(first) == 1 and again == []
    assert session.scalar(text("SELECT count(*) FROM tags WHERE name = 'vip'")) == 1


@pytest.mark.postgres  # advisory locks are PostgreSQL's
def test_the_lock_is_held_until_the_transaction_ends_and_taken_again_in_the_next(session):
    insert_ignoring_conflicts(session, Tag, ("name",), [_tag("a")], advisory_lock="order:7")
    assert _advisory_locks_held(session) == 1
    advisory_xact_lock(session, "order:7")  # already held: no second lock
    assert _advisory_locks_held(session) == 1
    session.commit()

    # A new transaction on the same session must lock again, not trust what the last one held.
    advisory_xact_lock(session, "order:7")
    assert _advisory_locks_held(session) == 1
    session.rollback()
    advisory_xact_lock(session, "order:7")
    assert _advisory_locks_held(session) == 1
    session.close()
    advisory_xact_lock(session, "order:7")
    assert _advisory_locks_held(session) == 1
    session.rollback()


@pytest.mark.postgres
def test_a_rolled_back_savepoint_gives_its_lock_back_and_the_next_call_takes_it_again(session):
    with pytest.raises(RuntimeError):
        with session.begin_nested():
            advisory_xact_lock(session, "order:8")
            assert _advisory_locks_held(session) == 1
            raise RuntimeError("undo")
    assert _advisory_locks_held(session) == 0
    advisory_xact_lock(session, "order:8")
    assert _advisory_locks_held(session) == 1
    session.rollback()
