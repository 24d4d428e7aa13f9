"""Tags a member carries: the name, when it was applied and by what (an event, an automation, the owner, an import).

Plain membership facts: these functions add and remove rows and report whether anything changed. They fire no
automations; ``automations.tags`` wraps them with the ``tag_added`` / ``tag_removed`` triggers.
"""

from __future__ import annotations

import enum
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Integer, String, bindparam, delete, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

import signals
import timeutil
from errors import NotFound, Unprocessable
from extensions import db
from membership.models import Member
from sqlutil import DriverStatement, attach, insert_ignoring_conflicts

TAG_NAME_MAX = 100
# Lower-case letters, digits and - _ . : (CRM tag names such as "purchased-12" or "keap:vip").
TAG_NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9_.:-]*[a-z0-9])?$"
_TAG_NAME = re.compile(TAG_NAME_PATTERN)


class AppliedBy(enum.StrEnum):
    EVENT = "event"
    AUTOMATION = "automation"
    OWNER = "owner"
    IMPORT = "import"


class Tag(db.Model):
    __tablename__ = "tags"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(TAG_NAME_MAX), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=timeutil.now)


class MemberTag(db.Model):
    __tablename__ = "member_tags"
    __table_args__ = (
        CheckConstraint("applied_by IN ('event', 'automation', 'owner', 'import')", name="applied_by"),
    )

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("tags.id", ondelete="CASCADE"), primary_key=True, index=True)
    applied_at: Mapped[datetime] = mapped_column(default=timeutil.now)
    applied_by: Mapped[str] = mapped_column(String(20))
    source: Mapped[str | None] = mapped_column(String(200))  # e.g. "payment_failed webhook:41", "rule #3"

    tag: Mapped[Tag] = relationship(lazy="joined")
    member: Mapped[Member] = relationship()


class TagNotFound(NotFound):
    code = "tag_not_found"
    message = "No tag has that name."


class InvalidTagName(Unprocessable):
    code = "invalid_tag_name"
    message = ("A tag name is 1 to 100 lower-case letters, digits and - _ . : characters, starting and ending "
               "with a letter or digit.")


def normalise_tag_name(raw: str | None) -> str:
    name = (raw or "").strip().lower()
    if len(name) > TAG_NAME_MAX or not _TAG_NAME.match(name):
        raise InvalidTagName(f"{raw!r} is not a usable tag name: use 1 to 100 lower-case letters, digits and "
                             "- _ . : (starting and ending with a letter or digit).")
    return name


def is_valid_tag_name(raw: str | None) -> bool:
    try:
        normalise_tag_name(raw)
    except InvalidTagName:
        return False
    return True


def slug_part(value: object) -> str:
    """A value made safe to sit inside a tag name (``purchased-{product_id}`` with a Stripe id, say)."""
    return re.sub(r"[^a-z0-9_.:]+", "-", str(value).strip().lower()).strip("-_.:") or "none"


def get_tag(session: Session, name: str) -> Tag:
    tag = session.scalar(select(Tag).where(Tag.name == normalise_tag_name(name)))
    if tag is None:
        raise TagNotFound()
    return tag


def get_or_create_tag(session: Session, name: str) -> Tag:
    name = normalise_tag_name(name)
    tag = session.scalar(select(Tag).where(Tag.name == name))
    if tag is not None:
        return tag
    tag = Tag(name=name)
    try:
        with session.begin_nested():
            session.add(tag)
            session.flush()
    except IntegrityError:  # created by a concurrent transaction
        tag = session.scalar(select(Tag).where(Tag.name == name))
        if tag is None:  # pragma: no cover
            raise
    return tag


def delete_tag(session: Session, tag: Tag) -> None:
    """Delete a tag and take it off every member (no ``tag_removed`` triggers: the tag no longer exists)."""
    session.execute(delete(MemberTag).where(MemberTag.tag_id == tag.id))
    session.delete(tag)
    session.flush()


def add_tag(session: Session, member: Member, name: str, *, applied_by: str,
            source: str | None = None) -> MemberTag | None:
    """Tag ``member``. Returns the new row, or None when the member already carried the tag."""
    added = add_tags(session, [Tagging(member, name, applied_by, source)])
    return added[0][1] if added else None


def remove_tag(session: Session, member: Member, name: str) -> bool:
    """Untag ``member``. Returns whether the member carried the tag."""
    name = normalise_tag_name(name)
    tag_id = session.scalar(select(Tag.id).where(Tag.name == name))
    if tag_id is None:
        return False
    row = session.get(MemberTag, (member.id, tag_id))
    if row is None:
        return False
    session.delete(row)
    session.flush()
    return True


@dataclass(frozen=True)
class Tagging:
    """One member to tag: by what (``AppliedBy``), with a source shown to the owner, and the key of the
    ``tag_added`` event it announces when the tag is new to them."""
    member: Member
    name: str
    applied_by: str
    source: str | None
    event_key: str = ""
    integration_id: int | None = None


def tag_member(session: Session, member: Member, name: str, *, applied_by: str, source: str | None,
               event_key: str, integration_id: int | None = None, depth: int = 0) -> bool:
    """Tag the member and announce it (automations hear ``tag_added``) when the tag is new to them. Returns
    whether it was new: :func:`tag_members` for one member."""
    return bool(tag_members(session, [Tagging(member, name, applied_by, source, event_key, integration_id)],
                            depth=depth))


def tag_members(session: Session, taggings: list[Tagging], *, depth: int = 0) -> list[Tagging]:
    """:func:`add_tags`, then announce ``members_tagged`` for the taggings that were new (returned)."""
    added = [tagging for tagging, _ in add_tags(session, taggings)]
    if added:
        signals.members_tagged.send(session, events=[
            dict(member=t.member, event_key=t.event_key, tag=normalise_tag_name(t.name),
                 integration_id=t.integration_id) for t in added], depth=depth)
    return added


def add_tags(session: Session, taggings: list[Tagging]) -> list[tuple[Tagging, MemberTag]]:
    """Tag many members at once; returns the taggings that were new to their member, with the rows added.

    The common case is one statement for the whole batch: the tags exist, and each member is new to theirs (new
    buyers' purchase tags). A tag used for the first time is created; a member who already carries a tag is left
    as they were; of a member's taggings with one name the first applies it (its source is the one shown). A
    concurrent transaction that tagged a member first wins; nothing is inserted twice."""
    firsts: dict[tuple[int, str], Tagging] = {}
    for tagging in taggings:
        firsts.setdefault((tagging.member.id, normalise_tag_name(tagging.name)), tagging)
    if not firsts:
        return []
    moment = timeutil.now()
    rows = {key: dict(member_id=key[0], applied_at=moment, applied_by=t.applied_by,
                      source=(t.source or None) and t.source[:200]) for key, t in firsts.items()}
    values = {f"{column}_{i}": value for i, ((_, name), row) in enumerate(rows.items())
              for column, value in {**row, "name": name}.items()}
    inserted = {(row.member_id, row.tag_id) for row in _tag_statement(len(rows)).execute(session, values)}
    per_member = Counter(member_id for member_id, _ in firsts)
    tag_ids: dict[str, int] = {}
    if len(inserted) < len(firsts) or max(per_member.values()) > 1:
        # Which row is whose cannot be told from the member alone: read the tags' ids.
        tag_ids = dict(session.execute(select(Tag.name, Tag.id).where(
            Tag.name.in_({name for _, name in firsts}))).tuples().all())
    inserted_for = {member_id: tag_id for member_id, tag_id in inserted}
    added: list[tuple[Tagging, MemberTag]] = []
    for key, tagging in firsts.items():
        member_id, name = key
        tag_id = tag_ids.get(name, inserted_for.get(member_id) if per_member[member_id] == 1 else None)
        if tag_id is None:  # a tag used for the first time
            tag_id = get_or_create_tag(session, name).id
            if not insert_ignoring_conflicts(session, MemberTag, ("member_id", "tag_id"),
                                             [{**rows[key], "tag_id": tag_id}], returning=("tag_id",)):
                continue
        elif (member_id, tag_id) not in inserted:
            continue  # they carried it already
        added.append((tagging, attach(session, MemberTag, {**rows[key], "tag_id": tag_id})))
    return added


_TAG_STATEMENTS: dict[int, DriverStatement] = {}


def _tag_statement(count: int):
    """``INSERT INTO member_tags ... SELECT`` from a VALUES list joined to the tags by name, built once per row
    count and compiled once (``sqlutil.DriverStatement``), as ``sqlutil.insert_ignoring_conflicts`` does for plain
    inserts."""
    statement = _TAG_STATEMENTS.get(count)
    if statement is None:
        values = ", ".join(f"(:member_id_{i}, :name_{i}, :applied_at_{i}, :applied_by_{i}, :source_{i})"
                           for i in range(count))
        binds = []
        for i in range(count):
            binds += [bindparam(f"member_id_{i}", type_=Integer()), bindparam(f"name_{i}", type_=String()),
                      bindparam(f"applied_at_{i}", type_=MemberTag.__table__.c.applied_at.type),
                      bindparam(f"applied_by_{i}", type_=String()), bindparam(f"source_{i}", type_=String())]
        statement = _TAG_STATEMENTS[count] = DriverStatement(text(
            f"WITH new (member_id, name, applied_at, applied_by, source) AS (VALUES {values}) "
            "INSERT INTO member_tags (member_id, tag_id, applied_at, applied_by, source) "
            "SELECT new.member_id, tags.id, new.applied_at, new.applied_by, new.source FROM new "
            "JOIN tags ON tags.name = new.name WHERE true "
            "ON CONFLICT (member_id, tag_id) DO NOTHING RETURNING member_id, tag_id"
        ).bindparams(*binds).columns(member_id=Integer(), tag_id=Integer()))
    return statement


def untag_member(session: Session, member: Member, name: str, *, event_key: str,
                 integration_id: int | None = None, depth: int = 0) -> bool:
    """Untag the member and announce ``member_untagged`` when they carried it. Returns whether they did."""
    name = normalise_tag_name(name)
    if not remove_tag(session, member, name):
        return False
    signals.member_untagged.send(session, member=member, event_key=event_key, tag=name,
                                 integration_id=integration_id, depth=depth)
    return True


def has_tag(session: Session, member_id: int, name: str) -> bool:
    return session.scalar(
        select(MemberTag.member_id).join(Tag, Tag.id == MemberTag.tag_id)
        .where(MemberTag.member_id == member_id, Tag.name == name)
    ) is not None


def member_tags(session: Session, member_id: int) -> list[MemberTag]:
    return list(session.scalars(
        select(MemberTag).join(Tag, Tag.id == MemberTag.tag_id).where(MemberTag.member_id == member_id)
        .order_by(Tag.name)
    ))


# How many members carry each tag, for listings (undeferred where wanted).
from sqlalchemy import func
from sqlalchemy.orm import column_property

Tag.member_count = column_property(
    select(func.count(MemberTag.member_id)).where(MemberTag.tag_id == Tag.id).correlate_except(MemberTag)
    .scalar_subquery(),
    deferred=True,
)
