"""Queue and deliver email. ``enqueue`` flushes and never commits; delivery runs after the commit."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

import jobs
import timeutil
from emails import rendering, transport
from emails.models import EmailStatus, OutboundEmail
from extensions import db

logger = logging.getLogger(__name__)

# Seconds to wait before attempt n+1; after the last one the email is marked failed.
RETRY_BACKOFF = (60, 300, 1800, 3600, 4 * 3600, 12 * 3600)


def enqueue(session: Session, template: str, to: str, context: dict, *, dedupe_key: str | None = None,
            member_id: int | None = None) -> OutboundEmail | None:
    """Render now, store the row, deliver after commit. Returns None when ``dedupe_key`` was already used."""
    if dedupe_key is not None:
        existing = session.scalar(select(OutboundEmail.id).where(OutboundEmail.dedupe_key == dedupe_key))
        if existing is not None:
            return None
    subject, text, html = rendering.render(template, context)
    email = OutboundEmail(recipient=to, template=template, subject=subject, text_body=text, html_body=html,
                          dedupe_key=dedupe_key, member_id=member_id, next_attempt_at=timeutil.now())
    try:
        with session.begin_nested():
            session.add(email)
            session.flush()
    except IntegrityError:
        # A concurrent transaction queued the same dedupe key first: that one wins.
        return None
    from emails import tasks

    jobs.after_commit(session, tasks.deliver, email.id)
    return email


def deliver(email_id: int) -> None:
    """Send one pending email, recording attempts and errors. Safe to call twice."""
    session = db.session
    email = session.get(OutboundEmail, email_id, with_for_update={"skip_locked": True})
    if email is None or email.status != EmailStatus.PENDING:
        session.rollback()
        return
    email.attempts += 1
    try:
        transport.send(recipient=email.recipient, subject=email.subject, text=email.text_body,
                       html=email.html_body, email_id=email.id)
    except Exception as exc:  # SMTP and file errors alike: record, back off, let the sweep retry
        email.last_error = f"{type(exc).__name__}: {exc}"[:1000]
        if email.attempts > len(RETRY_BACKOFF):
            email.status = EmailStatus.FAILED
            email.next_attempt_at = None
        else:
            email.next_attempt_at = timeutil.now() + timedelta(seconds=RETRY_BACKOFF[email.attempts - 1])
        logger.warning("email %s attempt %s failed: %s", email.id, email.attempts, type(exc).__name__)
    else:
        email.status = EmailStatus.SENT
        email.sent_at = timeutil.now()
        email.last_error = None
        email.next_attempt_at = None
    session.commit()


def sweep_pending(limit: int = 500) -> int:
    """Deliver every pending email whose next attempt is due. Returns how many were tried."""
    moment = timeutil.now()
    ids = db.session.scalars(
        select(OutboundEmail.id)
        .where(OutboundEmail.status == EmailStatus.PENDING,
               or_(OutboundEmail.next_attempt_at.is_(None), OutboundEmail.next_attempt_at <= moment))
        .order_by(OutboundEmail.id)
        .limit(limit)
    ).all()
    db.session.rollback()
    for email_id in ids:
        deliver(email_id)
    return len(ids)


def enqueue_many(session: Session, messages: list[tuple[str, str, dict, str, int | None]]) -> list[int]:
    """``enqueue`` for a batch: ``(template, to, context, dedupe_key, member_id)`` each, one INSERT in all.

    For periodic jobs that email thousands at once (the billing tick). A dedupe key already used is
    skipped, as with ``enqueue``; returns the ids of the rows created.
    """
    if not messages:
        return []
    now = timeutil.now()
    rows = []
    for template, to, context, dedupe_key, member_id in messages:
        subject, text, html = rendering.render(template, context)
        rows.append({"recipient": to, "template": template, "subject": subject, "text_body": text,
                     "html_body": html, "dedupe_key": dedupe_key, "member_id": member_id,
                     "status": EmailStatus.PENDING, "attempts": 0, "next_attempt_at": now, "created_at": now})
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    statement = (dialect_insert(OutboundEmail).on_conflict_do_nothing(index_elements=["dedupe_key"])
                 .returning(OutboundEmail.id))
    ids = list(session.scalars(statement, rows))
    from emails import tasks

    for email_id in ids:
        jobs.after_commit(session, tasks.deliver, email_id)
    return ids
