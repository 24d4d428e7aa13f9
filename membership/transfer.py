"""Members in and out as CSV: ``email, name, levels, tags, external_source``.

The import is set-based (a few bulk statements per 5,000 rows, not a round trip per member), merges into
members that already exist (email matched in any case), and reports every rejected row with its reason.
It flushes and never commits: the CLI runs it in one transaction, so a failure leaves nothing behind and
``--dry-run`` rolls back a complete rehearsal. Imports fire no automations and send no emails.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.orm import Session

import timeutil
from membership import grants
from membership.errors import InvalidEmail
from membership.models import Grant, GrantSourceKind, Level, Member
from membership.services import normalise_email
from membership.tags import AppliedBy, MemberTag, Tag, is_valid_tag_name, normalise_tag_name

COLUMNS = ("email", "name", "levels", "tags", "external_source")
LIST_SEPARATORS = re.compile(r"[;,|]")
EXPORT_SEPARATOR = ";"
BATCH = 5000
IN_CHUNK = 2000

Progress = Callable[[int], None]


class ImportFileError(Exception):
    """The file as a whole cannot be imported (no email column, unknown columns)."""


@dataclass
class Rejected:
    line: int
    email: str
    reason: str


@dataclass
class ImportRow:
    line: int
    email: str
    name: str
    level_ids: list[int]
    tags: list[str]
    external_source: str


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    grants_added: int = 0
    tags_added: int = 0
    rejected: list[Rejected] = field(default_factory=list)


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _bulk_insert(session: Session, table, rows: list[dict]) -> None:
    """PostgreSQL: COPY on the session's own connection (same transaction); elsewhere executemany."""
    if not rows:
        return
    connection = session.connection()
    if connection.dialect.name == "postgresql" and connection.dialect.driver == "psycopg":
        columns = list(rows[0])
        names = ", ".join(f'"{c}"' for c in columns)
        cursor = connection.connection.dbapi_connection.cursor()
        with cursor.copy(f'COPY "{table.name}" ({names}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row([row[c] for c in columns])
        return
    session.execute(insert(table), rows)


def read_csv(stream: TextIO) -> list[tuple[int, dict]]:
    """``(line number, row)`` pairs; header names are matched case-insensitively."""
    reader = csv.reader(stream)
    try:
        header = [h.strip().lower().lstrip("\ufeff") for h in next(reader)]
    except StopIteration:
        raise ImportFileError("The file is empty; the first line must name the columns.") from None
    if "email" not in header:
        raise ImportFileError(f"No 'email' column; the columns are {', '.join(COLUMNS)}.")
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise ImportFileError(f"Unknown column(s): {', '.join(unknown)}; the columns are {', '.join(COLUMNS)}.")
    rows = []
    for values in reader:
        if not any(v.strip() for v in values):
            continue
        row = dict(zip(header, values))
        if len(values) > len(header):
            row["__extra__"] = "yes"
        rows.append((reader.line_num, row))
    return rows


def _split(value: str | None) -> list[str]:
    return [part.strip() for part in LIST_SEPARATORS.split(value or "") if part.strip()]


def check_rows(session: Session, rows: Iterable[tuple[int, dict]], report: ImportReport) -> list[ImportRow]:
    """Validate each row; the good ones come back, the bad ones land on ``report.rejected`` with a reason."""
    levels = {slug: level_id for level_id, slug in session.execute(select(Level.id, Level.slug))}
    seen: dict[str, int] = {}
    good: list[ImportRow] = []
    for line, row in rows:
        report.rows += 1
        raw_email = (row.get("email") or "").strip()

        def reject(reason: str, line: int = line, raw_email: str = raw_email) -> None:
            report.rejected.append(Rejected(line, raw_email, reason))

        if row.get("__extra__"):
            reject("more values than columns")
            continue
        if not raw_email:
            reject("missing email")
            continue
        try:
            email = normalise_email(raw_email)
        except InvalidEmail:
            reject("invalid email")
            continue
        if email in seen:
            reject(f"duplicate of line {seen[email]}")
            continue
        name = (row.get("name") or "").strip()
        if len(name) > 200:
            reject("name longer than 200 characters")
            continue
        source = (row.get("external_source") or "").strip()
        if len(source) > 100:
            reject("external_source longer than 100 characters")
            continue
        slugs = _split(row.get("levels"))
        unknown = [s for s in slugs if s.lower() not in levels]
        if unknown:
            reject(f"unknown level(s): {', '.join(unknown)}")
            continue
        raw_tags = _split(row.get("tags"))
        bad = [t for t in raw_tags if not is_valid_tag_name(t)]
        if bad:
            reject(f"invalid tag name(s): {', '.join(bad)}")
            continue
        tags = sorted({normalise_tag_name(t) for t in raw_tags})
        seen[email] = line
        good.append(ImportRow(line, email, name, sorted({levels[s.lower()] for s in slugs}), tags, source))
    return good


def import_members(session: Session, rows: list[tuple[int, dict]], *, label: str = "import",
                   progress: Progress | None = None) -> ImportReport:
    """Import parsed CSV rows (see :func:`read_csv`). Flushes; the caller commits or rolls back."""
    tick = progress or (lambda n: None)
    report = ImportReport()
    good = check_rows(session, rows, report)
    tick(len(rows))
    if not good:
        return report
    moment = timeutil.now()

    # Members: find the existing ones, update what the file changes, insert the rest.
    ids: dict[str, int] = {}
    current: dict[str, tuple[str, str | None]] = {}
    for chunk in _chunks([r.email for r in good], IN_CHUNK):
        for member_id, email, name, source in session.execute(
                select(Member.id, Member.email, Member.name, Member.external_source).where(Member.email.in_(chunk))):
            ids[email] = member_id
            current[email] = (name, source)
    changes = []
    new_rows = []
    for row in good:
        if row.email in ids:
            name, source = current[row.email]
            change = {}
            if row.name and row.name != name:
                change["name"] = row.name
            if row.external_source and row.external_source != source:
                change["external_source"] = row.external_source
            if change:
                changes.append({"id": ids[row.email], "updated_at": moment, **change})
            else:
                report.unchanged += 1
        else:
            new_rows.append({"email": row.email, "name": row.name, "external_source": row.external_source or None,
                             "login_nonce": "", "created_at": moment, "updated_at": moment})
    # Core executemany statements: the ORM's bulk paths check rowcounts row by row on SQLite.
    members = Member.__table__
    for chunk in _chunks(changes, BATCH):
        for shape in {tuple(sorted(c)) for c in chunk}:  # one executemany per set of changed columns
            columns = [c for c in shape if c != "id"]
            statement = (update(members).where(members.c.id == bindparam("member_id"))
                         .values({c: bindparam(f"new_{c}") for c in columns}))
            session.execute(statement, [{"member_id": c["id"], **{f"new_{k}": c[k] for k in columns}}
                                        for c in chunk if tuple(sorted(c)) == shape])
        tick(len(chunk))
    report.updated = len(changes)
    for chunk in _chunks(new_rows, BATCH):
        _bulk_insert(session, members, chunk)
        tick(len(chunk))
    for chunk in _chunks([r["email"] for r in new_rows], IN_CHUNK):
        ids.update({email: member_id for member_id, email in
                    session.execute(select(members.c.id, members.c.email).where(members.c.email.in_(chunk)))})
    report.created = len(new_rows)

    # Grants: a level the member cannot open today gets a grant from this import.
    levels = {level.id: level for level in session.scalars(select(Level))}
    existing_ids = [ids[e] for e in current]
    holding: set[tuple[int, int]] = set()
    for chunk in _chunks(existing_ids, IN_CHUNK):
        holding.update(session.execute(
            select(Grant.member_id, Grant.level_id).where(Grant.member_id.in_(chunk), Grant.gives_access_at(moment))
        ).tuples())
    new_grants = [grants.new_grant_values(member_id=ids[row.email], level=levels[level_id], starts_at=moment,
                                          source_kind=GrantSourceKind.IMPORT, note=label)
                  for row in good for level_id in row.level_ids if (ids[row.email], level_id) not in holding]
    for chunk in _chunks(new_grants, BATCH):
        grants.insert_imported(session, chunk, insert_rows=_bulk_insert)
        tick(len(chunk))
    report.grants_added = len(new_grants)

    # Tags: create the names that are new, then tag whoever does not carry them yet.
    names = sorted({t for row in good for t in row.tags})
    tag_ids: dict[str, int] = {}
    for chunk in _chunks(names, IN_CHUNK):
        tag_ids.update({n: i for i, n in session.execute(select(Tag.id, Tag.name).where(Tag.name.in_(chunk)))})
    missing = [{"name": n, "created_at": moment} for n in names if n not in tag_ids]
    for chunk in _chunks(missing, BATCH):
        _bulk_insert(session, Tag.__table__, chunk)
    for chunk in _chunks([m["name"] for m in missing], IN_CHUNK):
        tag_ids.update({n: i for i, n in session.execute(select(Tag.id, Tag.name).where(Tag.name.in_(chunk)))})
    tagged: set[tuple[int, int]] = set()
    for chunk in _chunks(existing_ids, IN_CHUNK):
        tagged.update(session.execute(
            select(MemberTag.member_id, MemberTag.tag_id).where(MemberTag.member_id.in_(chunk))).tuples())
    member_tags = [{"member_id": ids[row.email], "tag_id": tag_ids[name], "applied_at": moment,
                    "applied_by": AppliedBy.IMPORT.value, "source": label[:200]}
                   for row in good for name in row.tags if (ids[row.email], tag_ids[name]) not in tagged]
    for chunk in _chunks(member_tags, BATCH):
        _bulk_insert(session, MemberTag.__table__, chunk)
        tick(len(chunk))
    report.tags_added = len(member_tags)
    session.flush()
    return report


def export_members(session: Session, out: TextIO, *, progress: Progress | None = None) -> int:
    """Write every member as CSV (levels = those they can open now). Returns the number of members."""
    tick = progress or (lambda n: None)
    moment = timeutil.now()
    levels: dict[int, set[str]] = {}
    for member_id, slug in session.execute(
            select(Grant.member_id, Level.slug).join(Level, Level.id == Grant.level_id)
            .where(Grant.gives_access_at(moment))):
        levels.setdefault(member_id, set()).add(slug)
    tags: dict[int, list[str]] = {}
    for member_id, name in session.execute(
            select(MemberTag.member_id, Tag.name).join(Tag, Tag.id == MemberTag.tag_id).order_by(Tag.name)):
        tags.setdefault(member_id, []).append(name)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    count = 0
    batch = 0
    for member_id, email, name, source in session.execute(
            select(Member.id, Member.email, Member.name, Member.external_source).order_by(Member.id)
            .execution_options(yield_per=BATCH)):
        writer.writerow([email, name, EXPORT_SEPARATOR.join(sorted(levels.get(member_id, ()))),
                         EXPORT_SEPARATOR.join(tags.get(member_id, ())), source or ""])
        count += 1
        batch += 1
        if batch == BATCH:
            tick(batch)
            batch = 0
    tick(batch)
    return count


def member_count(session: Session) -> int:
    from sqlalchemy import func

    return session.scalar(select(func.count(Member.id))) or 0
