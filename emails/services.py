"""Queue and deliver email. ``enqueue`` flushes and never commits; delivery runs after the commit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from flask import current_app
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

import jobs
import timeutil
from emails import catalog, credentials, placeholders, rendering, transport
from emails.errors import BadPlaceholders, EmailNotFound, UnknownTemplate
from emails.models import EmailStatus, EmailTemplateOverride, OutboundEmail
from extensions import db
from sqlutil import attach, insert_ignoring_conflicts

logger = logging.getLogger(__name__)

# Seconds to wait before attempt n+1; after the last one the email is marked failed.
RETRY_BACKOFF = (60, 300, 1800, 3600, 4 * 3600, 12 * 3600)


def enqueue(session: Session, template: str, to: str, context: dict, *, dedupe_key: str | None = None,
            member_id: int | None = None) -> OutboundEmail | None:
    """Render now, store the row, deliver after commit. Returns None when ``dedupe_key`` was already used.

    One ``INSERT ... ON CONFLICT (dedupe_key) DO NOTHING RETURNING``, no savepoint: when a concurrent
    transaction queues the same key, this one waits for it and does nothing, so the first one wins."""
    rows = _outbox_rows(session, [(template, to, context, dedupe_key, member_id)])
    inserted = _insert(session, rows)
    if not inserted:
        return None
    return attach(session, OutboundEmail, {**rows[0], "id": inserted[0]})


def _outbox_rows(session: Session, messages: list[tuple[str, str, dict, str | None, int | None]]) -> list[dict]:
    """Every column of each message's outbox row, rendered with the owner's overrides (read in one statement)."""
    templates = {template for template, *_ in messages}
    overrides = {o.template: o for o in session.scalars(
        select(EmailTemplateOverride).where(EmailTemplateOverride.template.in_(templates)))}
    moment = timeutil.now()
    rows = []
    for template, to, context, dedupe_key, member_id in messages:
        subject, text, html = _stored_form(rendering.render(template, context, overrides.get(template)), to)
        rows.append(dict(recipient=to, template=template, subject=subject, text_body=text, html_body=html,
                         status=EmailStatus.PENDING, attempts=0, last_error=None, dedupe_key=dedupe_key,
                         member_id=member_id, next_attempt_at=moment, created_at=moment, sent_at=None,
                         resent_from_id=None))
    return rows


def _insert(session: Session, rows: list[dict]) -> list[int]:
    """Store the rows in one statement (a dedupe key already used is skipped) and deliver each after commit."""
    ids = [row.id for row in insert_ignoring_conflicts(session, OutboundEmail, ("dedupe_key",), rows)]
    if len(ids) == 1:
        jobs.after_commit(session, "emails.deliver", ids[0])
    elif ids:
        jobs.after_commit(session, "emails.deliver_many", ids)
    return ids


def _stored_form(message: tuple[str, str, str], recipient: str) -> tuple[str, str, str]:
    """``(subject, text, html)`` as the outbox keeps them: credential links replaced by markers."""
    subject, text, html = credentials.scrub_parts(message, recipient)
    return subject, text, html


def deliver(email_id: int) -> None:
    """Send one pending email, recording attempts and errors. Safe to call twice.

    Links that are credentials are made here, for this attempt only (see :mod:`emails.credentials`)."""
    session = db.session
    email = session.get(OutboundEmail, email_id, with_for_update={"skip_locked": True})
    if email is None or email.status != EmailStatus.PENDING:
        session.rollback()
        return
    email.attempts += 1
    # A row queued before links were made at send time still holds its link: it is kept as a marker from now on.
    email.subject, email.text_body, email.html_body = _stored_form(
        (email.subject, email.text_body, email.html_body), email.recipient)
    try:
        subject, text, html = credentials.fill(session, (email.subject, email.text_body, email.html_body),
                                               email.recipient)
    except credentials.LinkUnavailable as exc:  # trying again cannot help; a resend goes to the current address
        email.status, email.last_error, email.next_attempt_at = EmailStatus.FAILED, exc.message, None
        session.commit()
        return
    try:
        transport.send(recipient=email.recipient, subject=subject, text=text, html=html, email_id=email.id)
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


def scrub_stored_links(session: Session, batch: int = 500) -> int:
    """Replace the credential links still held by emails stored before links were made at send time (see
    :mod:`emails.credentials`). Idempotent; commits per batch. Returns how many emails changed."""
    changed, last_id = 0, 0
    while True:
        found = list(session.scalars(select(OutboundEmail).where(OutboundEmail.id > last_id)
                                     .order_by(OutboundEmail.id).limit(batch)))
        if not found:
            return changed
        for email in found:
            stored = _stored_form((email.subject, email.text_body, email.html_body), email.recipient)
            if stored != (email.subject, email.text_body, email.html_body):
                email.subject, email.text_body, email.html_body = stored
                changed += 1
        last_id = found[-1].id
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


def get_email(session: Session, email_id: int) -> OutboundEmail:
    email = session.get(OutboundEmail, email_id)
    if email is None:
        raise EmailNotFound()
    return email


# Emails whose link is a credential made for that one sending (a login link, an invitation): a copy of the
# stored text would carry a link that has expired, been used, or was never stored. The domain that sends such
# an email registers how to make it afresh for a resend, ``fn(session, email) -> (recipient, context)``, or
# raises ``emails.errors.CannotResend``.
FreshContext = Callable[[Session, OutboundEmail], tuple[str, dict]]
_FRESH_CONTEXT: dict[str, FreshContext] = {}


def fresh_context_on_resend(template: str) -> Callable[[FreshContext], FreshContext]:
    """Register how ``template`` is made anew when it is resent."""
    catalog.get(template)

    def register(fn: FreshContext) -> FreshContext:
        _FRESH_CONTEXT[template] = fn
        return fn

    return register


def resend(session: Session, email: OutboundEmail) -> OutboundEmail:
    """Send an email again. A pending one is tried now; a sent or failed one is copied into a new pending row
    (the original stays as the record of what happened), rendered anew with a fresh link when its link was a
    one-time credential. Returns the row that will be delivered. Raises :class:`CannotResend` (409)."""
    if email.status == EmailStatus.PENDING:
        email.next_attempt_at = timeutil.now()
        session.flush()
        jobs.after_commit(session, "emails.deliver", email.id)
        return email
    subject, text, html, recipient = email.subject, email.text_body, email.html_body, email.recipient
    fresh_context = _FRESH_CONTEXT.get(email.template)
    if fresh_context is not None:
        recipient, context = fresh_context(session, email)
        subject, text, html = _stored_form(
            rendering.render(email.template, context, get_override(session, email.template)), recipient)
    copy = OutboundEmail(recipient=recipient, template=email.template, subject=subject,
                         text_body=text, html_body=html, member_id=email.member_id,
                         resent_from_id=email.id, next_attempt_at=timeutil.now())
    session.add(copy)
    session.flush()
    jobs.after_commit(session, "emails.deliver", copy.id)
    return copy


# --- the owner's own text for an email ---------------------------------------------------------------

def template_kind(name: str) -> catalog.EmailKind:
    try:
        return catalog.get(name)
    except LookupError:
        raise UnknownTemplate() from None


def get_override(session: Session, name: str) -> EmailTemplateOverride | None:
    template_kind(name)
    return session.scalar(select(EmailTemplateOverride).where(EmailTemplateOverride.template == name))


def validate_override(kind: catalog.EmailKind, subject: str | None, body: str | None) -> None:
    """Raise :class:`BadPlaceholders` (422) listing every problem with the owner's text."""
    allowed = kind.placeholders
    errors: dict[str, list[str]] = {}
    codes: list[str] = []
    for field, text, required in (("subject", subject, frozenset()), ("body", body, kind.body_required)):
        if text is None:
            continue
        problems = placeholders.check(text, allowed, required)
        messages = list(problems.syntax)
        if problems.syntax:
            codes.append("invalid_placeholder")
        if problems.unknown:
            codes.append("unknown_placeholder")
            messages.append("Unknown placeholder(s): " + ", ".join(f"{{{n}}}" for n in problems.unknown)
                            + ". This email has: " + ", ".join(f"{{{n}}}" for n in sorted(allowed)) + ".")
        if problems.missing:
            codes.append("missing_placeholder")
            messages.append("Missing required placeholder(s): "
                            + ", ".join(f"{{{n}}}" for n in problems.missing) + ".")
        if messages:
            errors[field] = messages
    if errors:
        labels = {"invalid_placeholder": "a malformed placeholder", "unknown_placeholder": "an unknown placeholder",
                  "missing_placeholder": "a required placeholder missing"}
        raise BadPlaceholders(f"The text has {labels[codes[0]]}.", code=codes[0], errors=errors)


def set_override(session: Session, name: str, *, subject: str | None, body: str | None) -> EmailTemplateOverride:
    """Store the owner's subject and body text (None keeps the default for that part)."""
    kind = template_kind(name)
    validate_override(kind, subject, body)
    override = get_override(session, name)
    if override is None:
        override = EmailTemplateOverride(template=name)
        session.add(override)
    override.subject = subject
    override.body = body
    session.flush()
    return override


def delete_override(session: Session, name: str) -> None:
    override = get_override(session, name)
    if override is not None:
        session.delete(override)
        session.flush()


# Stand-ins for a preview: what each context key looks like in a real email.
SAMPLE_VALUES = {"member_name": "Sam Example", "levels": ["Example Level"], "grace_days": 7,
                 "courses": [placeholders.Link("Example Course", "https://example.com/courses/example")]}


def preview(session: Session, name: str, *, subject: str | None = None,
            body: str | None = None) -> tuple[str, str, str]:
    """Render ``name`` with sample values and the given text (or the stored/default text when None)."""
    kind = template_kind(name)
    validate_override(kind, subject, body)
    stored = get_override(session, name)
    if subject is None and stored is not None:
        subject = stored.subject
    if body is None and stored is not None:
        body = stored.body
    text = EmailTemplateOverride(template=name, subject=subject, body=body)  # never added to the session
    site_url = current_app.config["SITE_URL"]
    context = {key: SAMPLE_VALUES.get(key, f"{site_url}/example" if key in kind.links else f"[{key}]")
               for key in kind.required | kind.optional}
    return rendering.render(name, context, text)
def enqueue_many(session: Session, messages: list[tuple[str, str, dict, str | None, int | None]]) -> list[int]:
    """``enqueue`` for a batch: ``(template, to, context, dedupe_key, member_id)`` each, one INSERT in all.

    For a batch of cart orders and for periodic jobs that email thousands at once (the billing tick). A dedupe
    key already used is skipped, as with ``enqueue``; returns the ids of the rows created.
    """
    if not messages:
        return []
    ids: list[int] = []
    for start in range(0, len(messages), _ROWS_PER_INSERT):
        ids += _insert(session, _outbox_rows(session, messages[start:start + _ROWS_PER_INSERT]))
    return ids


# A multi-row INSERT names every value as a parameter: keep a statement within every driver's limit.
_ROWS_PER_INSERT = 200
