"""Small helpers shared by the page and email tests."""

from __future__ import annotations

import contextlib
import re
from contextlib import contextmanager

from sqlalchemy import event

from extensions import db

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_LINK = re.compile(r"(https?://[^\s\"<>]+/login/[A-Za-z0-9_.\-]+)")


def csrf_token(client, path: str = "/login") -> str:
    page = client.get(path)
    match = _CSRF.search(page.get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login_link_in(text: str) -> str:
    match = _LINK.search(text)
    assert match, "no login link in the email"
    return match.group(1)


def follow_link(client, path: str, **kwargs):
    """Open a login link and press its page's sign-in button, as a member does: the POST uses the link. Returns
    the answer to the POST, or to the GET when it showed no button (a dead link, or already signed in)."""
    page = client.get(path, **kwargs)
    match = _CSRF.search(page.get_data(as_text=True)) if page.status_code == 200 else None
    if match is None:
        return page
    return client.post(path, data={"csrf_token": match.group(1)}, **kwargs)


def delivered_text(email_id: int, app=None, *, part: str = "plain") -> str:
    """The text (or ``part="html"``) of the message the file transport wrote for an outbox row: links that are
    credentials are made at delivery, so they are in the message and never in the row."""
    from email import message_from_bytes, policy
    from pathlib import Path

    from emails import transport

    with (app.app_context() if app is not None else contextlib.nullcontext()):
        folder = transport.mail_dir()
    [path] = sorted(Path(folder).glob(f"*-{email_id:06d}-*.eml"))
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    return message.get_body((part,)).get_content()


def path_of(url: str) -> str:
    return "/login/" + url.rsplit("/login/", 1)[1]


@contextmanager
def committed(app):
    """Set up data in its own app context and commit it, so requests see it (their own session)."""
    with app.app_context():
        yield db.session
        db.session.commit()


def sign_in_as(app, client, member_id: int) -> None:
    """A browser session for the member, as a login link leaves it (their current session generation)."""
    from membership.models import Member

    with app.app_context():
        generation = db.session.get(Member, member_id).session_generation
    with client.session_transaction() as browser:
        browser["member_id"] = member_id
        browser["member_generation"] = generation


@contextmanager
def statements_sent(session, *, starting: str | None = None):
    """The SQL statements the session's engine sends while the block runs (SAVEPOINT and RELEASE left out), or
    only those starting with ``starting`` (any case)."""
    seen: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        head = statement.lstrip().upper()
        if head.startswith(("SAVEPOINT", "RELEASE")):
            return
        if starting is None or head.startswith(starting.upper()):
            seen.append(statement)

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
