"""Where a transaction begins and ends: once per request, job or command, never inside a service.

A request's transaction begins with its first statement. When the view returns an answer below 400 the
request commits once (``commit_view``, called by ``create_app``'s app class right after the view, before the
response leaves and before the after-commit jobs are handed over); an answer of 400 or more, or an error that
reaches an error handler, rolls it back. Views therefore parse, call a service and serialise; they do not
commit. A view may still commit early when something must be durable before it goes on (a webhook delivery
stored before it is processed, a charge recorded before a gateway is called).

Jobs and CLI commands wrap their work in :func:`unit_of_work`, the same boundary: commit once at the end,
roll back on any error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Response
from sqlalchemy.orm import Session

from extensions import db


def _status(rv) -> int:
    """The status a view's return value will be answered with (Flask's own rules for tuples)."""
    if isinstance(rv, Response):
        return rv.status_code
    if isinstance(rv, tuple):
        for part in rv[1:]:
            if isinstance(part, int):
                return part
            if isinstance(part, str) and part[:3].isdigit():
                return int(part[:3])
    return 200


def commit_view(rv) -> None:
    """The request's boundary: commit what the view did when it answered success, else roll it back."""
    if not db.session.registry.has():
        return  # the view never opened the request's session (the access check reads on a connection of its own)
    if _status(rv) < 400:
        db.session.commit()
    else:
        db.session.rollback()


@contextmanager
def unit_of_work(session: Session | None = None) -> Iterator[Session]:
    """A job's or command's boundary: ``with unit_of_work() as session: ...`` commits once at the end, or rolls
    back and re-raises."""
    session = session or db.session
    try:
        yield session
    except BaseException:
        session.rollback()
        raise
    session.commit()
