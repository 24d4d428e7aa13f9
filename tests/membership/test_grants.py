"""membership.grants: every transition of a grant's life, many grants at once, and two runs at the same time."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from datetime import timedelta

import pytest
from sqlalchemy import select

import signals
import timeutil
from extensions import db
from membership import grants
from membership.errors import GrantAlreadyRevoked
from membership.grants import RevokeReason
from membership.models import Grant, GrantSourceKind, GrantStatus, Level
from tests import factories
from tests.helpers import statements_sent

NOW = timeutil.now().replace(microsecond=0)


def grant_updates(session):
    """The UPDATE statements sent for the grants table while the block runs."""
    return statements_sent(session, starting="UPDATE GRANTS")


@contextmanager
def heard(signal):
    calls: list[dict] = []

    def listener(sender, **kwargs):
        calls.append(kwargs)

    signal.connect(listener)
    try:
        yield calls
    finally:
        signal.disconnect(listener)


def reloaded(session, grant_ids):
    session.expire_all()
    return [session.get(Grant, grant_id) for grant_id in grant_ids]


@pytest.fixture
def world(session):
    level = factories.make_level(name="Pro", slug="pro")
    timed = factories.make_level(name="Thirty days", slug="thirty", duration_days=30)
    members = [factories.make_member(email=f"m{n}@example.com") for n in range(5)]
    return {"level": level, "timed": timed, "members": members}


def _open_many(session, world, *, level=None, n=5, **kwargs):
    level = level or world["level"]
    opened = [grants.open_grant(session, member, level, **kwargs) for member in world["members"][:n]]
    session.flush()
    return opened


def test_open_grant_uses_the_levels_duration_unless_told(session, world):
    with heard(signals.grants_opened) as calls, timeutil.frozen(NOW):
        lifetime = grants.open_grant(session, world["members"][0], world["level"])
        timed = grants.open_grant(session, world["members"][0], world["timed"])
        told = grants.open_grant(session, world["members"][0], world["timed"], ends_at=NOW + timedelta(days=3))
    assert (lifetime.status, lifetime.ends_at) == ("active", None)
    assert timed.ends_at == NOW + timedelta(days=30)
    assert told.ends_at == NOW + timedelta(days=3)
    assert [c["grant_ids"] for c in calls] == [[lifetime.id], [timed.id], [told.id]]


def test_open_lines_opens_each_order_line_once_in_one_statement(session, world):
    integration = factories.make_integration()
    rows = [grants.new_grant_values(member_id=m.id, level=world["timed"], starts_at=NOW,
                                    source_kind=GrantSourceKind.ORDER, integration_id=integration.id,
                                    order_ref=f"order-{m.id}", line_ref="product-12") for m in world["members"]]
    first = grants.open_lines(session, rows)
    again = grants.open_lines(session, rows + [grants.new_grant_values(
        member_id=world["members"][0].id, level=world["level"], starts_at=NOW, source_kind=GrantSourceKind.ORDER,
        integration_id=integration.id, order_ref=f"order-{world['members'][0].id}", line_ref="bump-12")])
    assert len(first) == 5 and [opened.line_ref for opened in first] == ["product-12"] * 5
    assert {opened.order_ref for opened in first} == {f"order-{m.id}" for m in world["members"]}
    assert [(o.line_ref, o.level_id) for o in again] == [("bump-12", world["level"].id)]  # only what is new
    opened = session.scalars(select(Grant).order_by(Grant.id)).all()
    assert len(opened) == 6 and {g.ends_at for g in opened[:5]} == {NOW + timedelta(days=30)}


def test_past_due_then_renewed_with_a_cart_rebill(session, world):
    held = _open_many(session, world, level=world["timed"], starts_at=NOW)
    with grant_updates(session) as updates, heard(signals.grants_changed) as calls:
        changed = grants.mark_past_due(session, held, at=NOW)
    assert len(updates) == 1 and calls[0]["change"] == "past_due"
    assert len(changed) == 5
    assert all((g.status, g.past_due_since) == ("past_due", NOW) for g in reloaded(session, [g.id for g in held]))
    # A second failure changes nothing: they are past due already.
    assert grants.mark_past_due(session, held) == []

    with timeutil.frozen(NOW + timedelta(days=2)):
        grants.renew(session, held)
    for grant in reloaded(session, [g.id for g in held]):
        assert (grant.status, grant.past_due_since) == ("active", None)
        assert grant.ends_at == NOW + timedelta(days=60)  # one more of the level's duration


def test_our_own_billings_grace_keeps_access_then_revokes_when_due(session, world):
    [grant] = _open_many(session, world, n=1, ends_at=NOW + timedelta(days=1), starts_at=NOW - timedelta(days=29))
    grace_end = NOW + timedelta(days=8)
    grants.mark_past_due(session, [grant], grace_until=grace_end, at=NOW)
    assert (grant.status, grant.ends_at) == ("past_due", grace_end)
    assert (grant.revoke_at, grant.scheduled_revoke_reason) == (grace_end, RevokeReason.PAYMENT_FAILED)
    session.commit()

    with timeutil.frozen(grace_end - timedelta(minutes=1)):
        assert grants.run_due_revocations(session) == 0
        assert grant.gives_access()
    with heard(signals.grants_revoked) as calls, timeutil.frozen(grace_end + timedelta(minutes=1)):
        assert grants.run_due_revocations(session) == 1
    [grant] = reloaded(session, [grant.id])
    assert (grant.status, grant.revoke_reason, grant.revoke_at) == ("revoked", "payment_failed", None)
    assert calls[0]["reason"] == "payment_failed" and [g.id for g in calls[0]["grants"]] == [grant.id]


def test_renewing_calls_off_the_grace_revocation(session, world):
    [grant] = _open_many(session, world, n=1, ends_at=NOW)
    grants.mark_past_due(session, [grant], grace_until=NOW + timedelta(days=7))
    grants.renew(session, [grant], ends_at=NOW + timedelta(days=30))
    [grant] = reloaded(session, [grant.id])
    assert (grant.status, grant.revoke_at, grant.scheduled_revoke_reason) == ("active", None, None)
    assert grant.ends_at == NOW + timedelta(days=30)


def test_restore_undoes_only_what_a_failed_payment_did(session, world):
    past_due, scheduled, revoked_for_payment, refunded, untouched = _open_many(session, world)
    grants.mark_past_due(session, [past_due])
    grants.schedule_revocation(session, [scheduled], NOW + timedelta(days=7), RevokeReason.PAYMENT_FAILED)
    grants.revoke(session, [revoked_for_payment], RevokeReason.PAYMENT_FAILED)
    grants.revoke(session, [refunded], RevokeReason.REFUNDED)

    restored = grants.restore(session, [past_due, scheduled, revoked_for_payment, refunded, untouched])
    assert {g.id for g in restored} == {past_due.id, scheduled.id, revoked_for_payment.id}
    by_id = {g.id: g for g in reloaded(session, [past_due.id, scheduled.id, revoked_for_payment.id, refunded.id])}
    assert all(by_id[g].status == "active" and by_id[g].gives_access() for g in (past_due.id, revoked_for_payment.id))
    assert (by_id[scheduled.id].revoke_at, by_id[revoked_for_payment.id].revoked_at) == (None, None)
    assert (by_id[refunded.id].status, by_id[refunded.id].revoke_reason) == ("revoked", "refunded")


def test_end_grace_ends_past_due_access_now_and_leaves_paid_access(session, world):
    past_due, paid = _open_many(session, world, n=2, ends_at=NOW + timedelta(days=20))
    grants.mark_past_due(session, [past_due], grace_until=NOW + timedelta(days=25))
    assert grants.end_grace(session, [past_due, paid], at=NOW) == [past_due]
    past_due, paid = reloaded(session, [past_due.id, paid.id])
    assert (past_due.ends_at, past_due.revoke_at) == (NOW, None)
    assert paid.ends_at == NOW + timedelta(days=20)


def test_pause_and_resume_remember_a_failing_payment(session, world):
    active, failing, revoked = _open_many(session, world, n=3)
    grants.mark_past_due(session, [failing])
    grants.revoke(session, [revoked], "owner")
    with grant_updates(session) as updates:
        paused = grants.pause(session, [active, failing, revoked])
    assert len(updates) == 1 and {g.id for g in paused} == {active.id, failing.id}
    assert not any(g.gives_access() for g in reloaded(session, [active.id, failing.id]))
    resumed = grants.resume(session, [active, failing, revoked])
    active, failing, revoked = reloaded(session, [active.id, failing.id, revoked.id])
    assert {g.id for g in resumed} == {active.id, failing.id}
    assert (active.status, failing.status, revoked.status) == ("active", "past_due", "revoked")


def test_schedule_revocation_keeps_the_earlier_one_or_any_one(session, world):
    soon, later, fresh = _open_many(session, world, n=3)
    grants.schedule_revocation(session, [soon], NOW + timedelta(days=1), "cancelled")
    grants.schedule_revocation(session, [later], NOW + timedelta(days=30), "cancelled")
    moved = grants.schedule_revocation(session, [soon, later, fresh], NOW + timedelta(days=10), "cancelled")
    assert {g.id for g in moved} == {later.id, fresh.id}  # the earlier cancel stands
    assert soon.revoke_at == NOW + timedelta(days=1) and later.revoke_at == NOW + timedelta(days=10)
    kept = grants.schedule_revocation(session, [soon, later], NOW + timedelta(days=2), "rule #1", keep_existing=True)
    assert kept == [] and soon.scheduled_revoke_reason == "cancelled"


def test_revoke_many_is_one_statement_and_skips_the_revoked(session, world):
    held = _open_many(session, world)
    grants.revoke(session, held[:1], "first")
    with grant_updates(session) as updates, heard(signals.grants_revoked) as calls:
        revoked = grants.revoke(session, held, RevokeReason.REFUNDED, at=NOW)
    assert len(updates) == 1 and len(revoked) == 4 and len(calls) == 1
    for grant in reloaded(session, [g.id for g in held[1:]]):
        assert (grant.status, grant.revoked_at, grant.revoke_reason) == ("revoked", NOW, "refunded")
    assert grants.revoke(session, held, "again") == []
    with pytest.raises(GrantAlreadyRevoked):
        grants.revoke_one(session, held[0], "again")


def test_reopen_gives_a_revoked_grant_again(session, world):
    [grant] = _open_many(session, world, n=1)
    grants.revoke(session, [grant], RevokeReason.KEAP_REVOKE)
    grants.reopen(session, [grant], starts_at=NOW, ends_at=NOW + timedelta(days=5))
    [grant] = reloaded(session, [grant.id])
    assert (grant.status, grant.starts_at, grant.ends_at, grant.revoked_at, grant.revoke_reason) == (
        "active", NOW, NOW + timedelta(days=5), None, None)


def test_extend_refuses_a_revoked_grant_and_an_end_before_the_start(session, world):
    open_one, revoked = _open_many(session, world, n=2, starts_at=NOW)
    grants.revoke(session, [revoked], "owner")
    assert grants.extend(session, open_one, NOW + timedelta(days=90)).ends_at == NOW + timedelta(days=90)
    assert grants.extend(session, open_one, None).ends_at is None
    with pytest.raises(Exception) as refused:
        grants.extend(session, revoked, None)
    assert refused.value.code == "grant_revoked"
    with pytest.raises(Exception) as refused:
        grants.extend(session, open_one, NOW - timedelta(days=1))
    assert refused.value.code == "invalid_ends_at"


def test_run_due_revocations_revokes_with_each_grants_reason(session, world):
    cancelled, lapsed, future = _open_many(session, world, n=3)
    grants.schedule_revocation(session, [cancelled], NOW - timedelta(minutes=1), RevokeReason.CANCELLED)
    grants.schedule_revocation(session, [lapsed], NOW - timedelta(minutes=1), RevokeReason.PAYMENT_FAILED)
    grants.schedule_revocation(session, [future], NOW + timedelta(days=1), RevokeReason.CANCELLED)
    session.commit()
    with timeutil.frozen(NOW):
        assert grants.run_due_revocations(session) == 2
    cancelled, lapsed, future = reloaded(session, [cancelled.id, lapsed.id, future.id])
    assert (cancelled.revoke_reason, lapsed.revoke_reason, future.status) == ("cancelled", "payment_failed", "active")


def test_nothing_outside_membership_writes_a_grants_lifecycle_fields():
    """The rule this module exists for, checked on the source: no assignment to a grant's status, dates or
    revocation fields anywhere but membership/."""
    import ast
    from pathlib import Path

    fields = {"status", "starts_at", "ends_at", "revoked_at", "revoke_reason", "revoke_at",
              "scheduled_revoke_reason", "past_due_since"}
    root = Path(__file__).resolve().parents[2]
    skip = {"membership", "tests", "migrations", "bench", "scripts", "instance", "docs", "templates"}
    paths = [*root.glob("*.py")] + [path for top in root.iterdir() if top.is_dir() and top.name not in skip
                                    and not top.name.startswith(".") for path in top.rglob("*.py")]
    offenders = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, (ast.AugAssign, ast.AnnAssign)) else []
            for target in targets:
                for leaf in ast.walk(target):
                    if isinstance(leaf, ast.Attribute) and leaf.attr in fields and isinstance(leaf.value, ast.Name) \
                            and "grant" in leaf.value.id.lower():
                        offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []


# --- two transactions at once (PostgreSQL) --------------------------------------------------------------------

def _in_threads(app, work, count: int = 2) -> list:
    barrier = threading.Barrier(count)
    results: list = [None] * count
    errors: list = []

    def run(index: int) -> None:
        try:
            with app.app_context():
                barrier.wait(timeout=10)
                results[index] = work(db.session)
                db.session.commit()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    return results


@pytest.mark.postgres
def test_two_due_runs_at_once_revoke_each_grant_once(app, session, world):
    members = [factories.make_member(email=f"due{n}@example.com") for n in range(40)]
    for member in members:
        grant = grants.open_grant(session, member, world["level"])
        grants.schedule_revocation(session, [grant], NOW - timedelta(minutes=1), RevokeReason.CANCELLED)
    session.commit()
    revoked: list[int] = []
    lock = threading.Lock()

    def count(sender, *, grants, reason, depth=0):
        with lock:
            revoked.extend(g.id for g in grants)

    signals.grants_revoked.connect(count)
    try:
        done = _in_threads(app, lambda s: grants.run_due_revocations(s, limit=1000))
    finally:
        signals.grants_revoked.disconnect(count)
    assert sum(done) == 40 and len(revoked) == 40 and len(set(revoked)) == 40
    session.expire_all()
    assert set(session.scalars(select(Grant.status))) == {GrantStatus.REVOKED}


@pytest.mark.postgres
def test_the_same_order_lines_opened_twice_at_once_open_once(app, session, world):
    integration_id = factories.make_integration().id
    member_ids, level_id = [m.id for m in world["members"]], world["level"].id
    session.commit()

    def open_them(s):
        rows = [grants.new_grant_values(member_id=member_id, level=s.get(Level, level_id), starts_at=NOW,
                                        source_kind=GrantSourceKind.ORDER, integration_id=integration_id,
                                        order_ref=f"order-{member_id}", line_ref="product-1")
                for member_id in member_ids]
        return grants.open_lines(s, rows)

    first, second = _in_threads(app, open_them)
    assert len(first) + len(second) == 5
    session.expire_all()
    assert len(session.scalars(select(Grant)).all()) == 5
