"""jobs.after_commit waits for the real commit: a SAVEPOINT released or rolled back is not one."""

from __future__ import annotations

from sqlalchemy import select

import jobs
from emails import services as email_services
from emails.models import OutboundEmail
from tests import factories


def test_a_savepoint_neither_sends_early_nor_drops_the_trigger(session):
    member = factories.make_member()
    email_services.enqueue(session, "login_link", member.email, {"member_name": "A", "login_url": "http://x/l"})
    with session.begin_nested():  # released: must not dispatch the email before the row is committed
        factories.make_level()
    try:
        with session.begin_nested():  # rolled back: must not forget the pending delivery
            factories.make_course()
            raise RuntimeError
    except RuntimeError:
        pass
    assert session.info.get(jobs._PENDING_KEY)
    session.commit()
    assert session.scalar(select(OutboundEmail.status)) == "sent"


def test_a_full_rollback_from_inside_a_savepoint_drops_the_trigger(session):
    member = factories.make_member()
    email_services.enqueue(session, "login_link", member.email, {"member_name": "A", "login_url": "http://x/l"})
    session.begin_nested()
    factories.make_level()
    session.rollback()
    assert not session.info.get(jobs._PENDING_KEY)
