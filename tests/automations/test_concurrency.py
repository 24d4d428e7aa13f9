"""The same event fired by two processes at the same moment (PostgreSQL): it runs once."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select

from automations.models import AutomationEvent, AutomationRun
from automations.triggers import fire
from emails.models import OutboundEmail
from extensions import db
from membership.models import Member
from tests import factories
from tests.automations.helpers import make_rule


@pytest.mark.postgres
def test_two_transactions_firing_one_event_run_its_rules_once(app):
    with app.app_context():
        member = factories.make_member(email="race@example.com")
        make_rule("order_completed", [{"type": "send_email", "template": "automation_message",
                                       "subject": "Thanks", "body": "Thanks {member_name}"}])
        db.session.commit()
        member_id = member.id
    barrier = threading.Barrier(2)
    results: list = []

    def worker():
        with app.app_context():
            try:
                me = db.session.get(Member, member_id)
                barrier.wait(timeout=5)
                event = fire(db.session, "order_completed", member=me, event_key="webhook:77:line:product-1",
                             product_id="1")
                db.session.commit()
                results.append(event is not None)
            except Exception as exc:  # noqa: BLE001 - reported through results
                db.session.rollback()
                results.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert sorted(results, key=str) == [False, True]
    with app.app_context():
        assert db.session.scalar(select(func.count(AutomationEvent.id)).where(
            AutomationEvent.trigger == "order_completed")) == 1
        assert db.session.scalar(select(func.count(AutomationRun.id))) == 1
        assert db.session.scalar(select(func.count(OutboundEmail.id))) == 1
