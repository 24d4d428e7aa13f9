"""Set-based changes to many members at once (the owner's bulk tools), in batches, never row by row."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import select, update
from sqlalchemy.orm import Session

import timeutil
from errors import Unprocessable
from membership.errors import InvalidEmail, LevelNotFound
from membership.models import Grant, Level, Member
from membership.services import normalise_email

# Rows per statement: SQLite caps bound parameters (999 on older builds); PostgreSQL takes far more.
BATCH = {"sqlite": 900, "postgresql": 10_000}


@dataclass
class BulkResult:
    matched: int = 0
    changed: int = 0
    not_found: list = field(default_factory=list)  # emails or ids that match no member
    invalid: list[str] = field(default_factory=list)  # strings that are not email addresses

    def as_dict(self) -> dict:
        return {"matched": self.matched, "changed": self.changed, "unchanged": self.matched - self.changed,
                "not_found": self.not_found, "invalid": self.invalid}


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _apply(session: Session, ids: list[int], source: str | None, result: BulkResult) -> None:
    result.matched += len(ids)
    if not ids:
        return
    outcome = session.execute(
        update(Member)
        .where(Member.id.in_(ids), Member.external_source.is_distinct_from(source))
        .values(external_source=source, updated_at=timeutil.now())
        .execution_options(synchronize_session=False)
    )
    result.changed += outcome.rowcount


def set_external_source(session: Session, source: str | None, *, member_ids: list[int] | None = None,
                        level_id: int | None = None, emails: list[str] | None = None,
                        progress: Callable[[int], None] | None = None) -> BulkResult:
    """Set ``external_source`` on the members chosen by ids, by a level they hold now, or by emails.

    Exactly one selector. Emails match in any case; the result lists what matched no member."""
    selectors = [s for s in (member_ids, level_id, emails) if s is not None]
    if len(selectors) != 1:
        raise Unprocessable("Choose the members one way: member_ids, level_id or emails.", code="selector_required")
    source = source.strip() or None if source is not None else None
    result = BulkResult()
    tick = progress or (lambda n: None)
    size = BATCH.get(session.get_bind().dialect.name, 900)

    if member_ids is not None:
        wanted = list(dict.fromkeys(member_ids))
        for chunk in _chunks(wanted, size):
            found = set(session.scalars(select(Member.id).where(Member.id.in_(chunk))))
            result.not_found += [i for i in chunk if i not in found]
            _apply(session, sorted(found), source, result)
            tick(len(chunk))
    elif level_id is not None:
        if session.get(Level, level_id) is None:
            raise LevelNotFound()
        holders = select(Grant.member_id).where(Grant.level_id == level_id,
                                               Grant.gives_access_at(timeutil.now())).distinct()
        ids = list(session.scalars(holders))
        for chunk in _chunks(ids, size):
            _apply(session, chunk, source, result)
            tick(len(chunk))
    else:
        normalised: dict[str, str] = {}
        for raw in emails or []:
            try:
                normalised.setdefault(normalise_email(raw), raw)
            except InvalidEmail:
                result.invalid.append(raw)
        wanted = list(normalised)
        for chunk in _chunks(wanted, size):
            found = dict(session.execute(select(Member.email, Member.id).where(Member.email.in_(chunk))).all())
            result.not_found += [normalised[e] for e in chunk if e not in found]
            _apply(session, sorted(found.values()), source, result)
            tick(len(chunk))
    session.flush()
    return result
