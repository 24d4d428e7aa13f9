"""One clock for the whole service, so tests (and billing) can travel in time.

Everything that needs "now" calls :func:`now`; tests swap the clock with :func:`frozen` or
:func:`set_clock`. Datetimes are always timezone-aware UTC.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Callable, Iterator

_clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731


def now() -> datetime:
    return _clock()


def set_clock(clock: Callable[[], datetime] | None) -> None:
    global _clock
    _clock = clock or (lambda: datetime.now(UTC))


@contextlib.contextmanager
def frozen(at: datetime) -> Iterator[list[datetime]]:
    """Freeze "now" at ``at``; the yielded one-item list can be reassigned to move the clock."""
    moment = [as_utc(at)]
    set_clock(lambda: moment[0])
    try:
        yield moment
    finally:
        set_clock(None)


def as_utc(value: datetime) -> datetime:
    """Treat naive datetimes (SQLite gives these back) as UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
