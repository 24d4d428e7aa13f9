"""Jobs fire after the real commit only: savepoints neither fire nor drop them."""

import pytest
from sqlalchemy.exc import IntegrityError

from emails.models import OutboundEmail
from extensions import db
from membership.models import Member


def _queue(session):
    from emails import services

    return services.enqueue(session, "login_link", "a@example.com",
                            {"member_name": "A", "login_url": "http://coursegate.test/login/x"})


def test_a_failed_savepoint_keeps_jobs_queued_before_it(app_ctx, app):
    email = _queue(db.session)
    with pytest.raises(IntegrityError):
        with db.session.begin_nested():
            db.session.add(Member(email="Not Normalised@Example.com"))
            db.session.flush()
    db.session.commit()
    assert db.session.get(OutboundEmail, email.id).status == "sent"


def test_a_rolled_back_transaction_sends_nothing(app_ctx, app):
    email_id = _queue(db.session).id
    db.session.rollback()
    assert db.session.get(OutboundEmail, email_id) is None
    db.session.commit()  # nothing left to trigger


def test_a_savepoint_commit_does_not_send_early(app_ctx, app, tmp_path):
    email = _queue(db.session)
    with db.session.begin_nested():
        db.session.add(Member(email="b@example.com"))
    db.session.refresh(email)
    assert email.status == "pending"
    db.session.commit()
    assert db.session.get(OutboundEmail, email.id).status == "sent"
