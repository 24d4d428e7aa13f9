"""Hot-path SQL helpers any domain may use (like timeutil, this module imports no domain).

``insert_ignoring_conflicts`` is ``INSERT ... ON CONFLICT DO NOTHING RETURNING``: one round trip, safe when
two transactions insert the same key (on PostgreSQL the second waits for the first, then does nothing), and no
SAVEPOINT. It goes through Core with statements built once, so SQLAlchemy's compiled cache serves every later
call (the ORM's bulk insert with RETURNING costs several times the CPU). ``attach`` then puts the ORM object
for a row just inserted into the session without reading it back.
"""

from __future__ import annotations

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, make_transient_to_detached

_STATEMENTS: dict = {}


def insert_ignoring_conflicts(session: Session, model, index_elements: tuple[str, ...], rows: list[dict],
                              returning: tuple[str, ...] = ("id",)) -> list:
    """Insert ``rows`` (each with every column's value); returns the ``returning`` columns of the rows actually
    inserted. A row whose ``index_elements`` (a unique constraint) are taken is skipped."""
    dialect = session.get_bind().dialect.name
    key = (model, index_elements, returning, dialect)
    statement = _STATEMENTS.get(key)
    if statement is None:
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        table = model.__table__
        statement = _STATEMENTS[key] = (insert(table).on_conflict_do_nothing(index_elements=list(index_elements))
                                        .returning(*(table.c[name] for name in returning)))
    return session.execute(statement, rows).all()


def attach(session: Session, model, values: dict):
    """The ORM object for a row just inserted with ``values`` (every column, its key included), without
    reading it back. Its attributes count as loaded, so nothing is written again at the next flush."""
    instance = model(**values)
    make_transient_to_detached(instance)
    session.add(instance)
    return instance
