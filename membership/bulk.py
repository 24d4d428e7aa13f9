"""Set-based changes to many members at once (the owner's bulk tools), in batches, never row by row.

A change is an action (set the external source, add or remove a tag, grant a level) over a selection (member
ids, the holders of a level, emails, or everyone matching a search). Ids and emails are matched in batches;
a level or a search is one subquery, so "every member matching this search" costs the same statements for ten
members as for 100,000. Bulk changes run no automations and send no email, like an import."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sqlalchemy import delete, exists, func, insert, literal, or_, select, update
from sqlalchemy.orm import Session

import timeutil
from errors import Unprocessable
from membership import tags as member_tags
from membership.errors import InvalidEmail, LevelNotFound
from membership import grants
from membership.models import Grant, GrantSourceKind, Level, Member
from membership.services import normalise_email

# Rows per statement: SQLite caps bound parameters (999 on older builds); PostgreSQL takes far more.
BATCH = {"sqlite": 900, "postgresql": 10_000}
BULK_SOURCE = "owner bulk change"
COUNTED = {"preserve_rowcount": True}  # an INSERT ... SELECT reports its row count only when asked
ACTIONS = ("set_external_source", "add_tag", "remove_tag", "grant_level")


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


def search_condition(q: str | None):
    """Members matching part of an email or name (the admin's member search); an email-looking query (with
    "@") matches the start of the email, which the unique email index serves. None: everyone."""
    term = (q or "").strip().lower()
    if not term:
        return None
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    if "@" in term:
        return Member.email.like(f"{escaped}%", escape="\\")
    pattern = f"%{escaped}%"
    return or_(Member.email.like(pattern, escape="\\"), Member.name.ilike(pattern, escape="\\"))


def search_ids(q: str | None):
    """``SELECT members.id`` for everyone a search matches."""
    condition = search_condition(q)
    query = select(Member.id)
    return query if condition is None else query.where(condition)


# --- actions: each changes the members whose id is in ``target`` (a list or a subquery) and counts them ----

def _set_external_source(session: Session, target, source: str | None) -> int:
    return session.execute(
        update(Member)
        .where(Member.id.in_(target), Member.external_source.is_distinct_from(source))
        .values(external_source=source, updated_at=timeutil.now())
        .execution_options(synchronize_session=False)
    ).rowcount


def _add_tag(session: Session, target, tag_id: int) -> int:
    carries = exists().where(member_tags.MemberTag.member_id == Member.id, member_tags.MemberTag.tag_id == tag_id)
    rows = select(Member.id, literal(tag_id), literal(timeutil.now(), type_=member_tags.MemberTag.applied_at.type),
                  literal(member_tags.AppliedBy.OWNER.value), literal(BULK_SOURCE)) \
        .where(Member.id.in_(target), ~carries)
    table = member_tags.MemberTag.__table__
    return session.execute(insert(table).from_select(
        ["member_id", "tag_id", "applied_at", "applied_by", "source"], rows), execution_options=COUNTED).rowcount


def _remove_tag(session: Session, target, tag_id: int) -> int:
    return session.execute(delete(member_tags.MemberTag.__table__).where(
        member_tags.MemberTag.member_id.in_(target), member_tags.MemberTag.tag_id == tag_id)).rowcount


def _grant_level(session: Session, target, level: Level) -> int:
    return grants.open_for_members(session, target, level, source_kind=GrantSourceKind.MANUAL, note=BULK_SOURCE,
                                   execution_options=COUNTED)


def _action(session: Session, action: str, value) -> Callable:
    """The action as ``target -> changed count``, its argument checked once up front."""
    if action == "set_external_source":
        source = value.strip() or None if value is not None else None
        return lambda target: _set_external_source(session, target, source)
    if action == "add_tag":
        tag = member_tags.get_or_create_tag(session, value)
        return lambda target: _add_tag(session, target, tag.id)
    if action == "remove_tag":
        tag = member_tags.get_tag(session, value)
        return lambda target: _remove_tag(session, target, tag.id)
    if action == "grant_level":
        level = session.get(Level, value) if isinstance(value, int) else None
        if level is None:
            raise LevelNotFound()
        return lambda target: _grant_level(session, target, level)
    raise Unprocessable(f"Use one of: {', '.join(ACTIONS)}.", code="invalid_bulk_action")


def apply(session: Session, action: str, value, *, member_ids: list[int] | None = None,
          level_id: int | None = None, emails: list[str] | None = None, search: str | None = None,
          progress: Callable[[int], None] | None = None) -> BulkResult:
    """Run ``action`` with ``value`` (the source, a tag name or a level id) over the members chosen by ids, by
    a level they hold now, by emails, or by a search (``""`` = every member). Exactly one selector.

    Emails match in any case; the result lists what matched no member. Flushes, never commits."""
    selectors = [s for s in (member_ids, level_id, emails, search) if s is not None]
    if len(selectors) != 1:
        raise Unprocessable("Choose the members one way: member_ids, level_id, emails or search.",
                            code="selector_required")
    if level_id is not None and session.get(Level, level_id) is None:
        raise LevelNotFound()
    run = _action(session, action, value)
    result = BulkResult()
    tick = progress or (lambda n: None)
    size = BATCH.get(session.get_bind().dialect.name, 900)

    if level_id is not None or search is not None:
        target = (select(Grant.member_id).where(Grant.level_id == level_id, Grant.gives_access_at(timeutil.now()))
                  .distinct() if level_id is not None else search_ids(search))
        result.matched = session.scalar(select(func.count()).select_from(target.subquery())) or 0
        result.changed = run(target.scalar_subquery()) if result.matched else 0
        tick(result.matched)
    elif member_ids is not None:
        wanted = list(dict.fromkeys(member_ids))
        for chunk in _chunks(wanted, size):
            found = set(session.scalars(select(Member.id).where(Member.id.in_(chunk))))
            result.not_found += [i for i in chunk if i not in found]
            result.matched += len(found)
            result.changed += run(sorted(found)) if found else 0
            tick(len(chunk))
    else:
        normalised: dict[str, str] = {}
        for raw in emails or []:
            try:
                normalised.setdefault(normalise_email(raw), raw)
            except InvalidEmail:
                result.invalid.append(raw)
        for chunk in _chunks(list(normalised), size):
            found = dict(session.execute(select(Member.email, Member.id).where(Member.email.in_(chunk))).all())
            result.not_found += [normalised[e] for e in chunk if e not in found]
            result.matched += len(found)
            result.changed += run(sorted(found.values())) if found else 0
            tick(len(chunk))
    session.flush()
    return result


def set_external_source(session: Session, source: str | None, *, member_ids: list[int] | None = None,
                        level_id: int | None = None, emails: list[str] | None = None,
                        progress: Callable[[int], None] | None = None) -> BulkResult:
    """Set ``external_source`` on the members chosen by ids, by a level they hold now, or by emails."""
    return apply(session, "set_external_source", source, member_ids=member_ids, level_id=level_id, emails=emails,
                 progress=progress)
