"""Hot-path SQL helpers any domain may use (like timeutil, this module imports no domain).

``insert_ignoring_conflicts`` is ``INSERT ... ON CONFLICT DO NOTHING RETURNING``: one round trip, safe when
two transactions insert the same key (on PostgreSQL the second waits for the first, then does nothing), and no
SAVEPOINT. ``attach`` then puts the ORM object for a row just inserted into the session without reading it back.

Why a text statement: SQLAlchemy 2.0's dialect ``insert()`` (the one with ``on_conflict_do_nothing``) opts out
of the compiled cache (``inherit_cache = False``), so every call compiled it again, about a millisecond of CPU
each, several times per cart order. The statement below is built once per (table, columns, row count) from the
table's own columns and types, so values are processed exactly as the ORM would (JSON, UTC datetimes), and the
compiled cache serves every later call. ``DriverStatement`` then runs it as the SQL the driver reads, compiled once,
so no execution builds the cache key of each of its binds (a batch's insert has one per value).
"""

from __future__ import annotations

import collections
import threading
import weakref
from typing import Callable

from flask import current_app
from sqlalchemy import Engine, Select, String, bindparam, create_engine, event, inspect, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, configure_mappers, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value

_STATEMENTS: dict = {}

# psycopg keeps the parsed form of a query only when it has at most 50 parameters and 4 KiB of text, because an
# ORM's multi-row INSERTs rarely repeat (psycopg discussion 628). Ours do: one statement per row count (batches
# of at most 200 rows, built once, above), so a batch of a few orders would re-parse each of its inserts every
# time (3% of a delivery's CPU). Raise the bounds to fit a full batch (64 orders); the cache itself stays
# psycopg's (128 entries, so at most a few MiB).
try:
    from psycopg import _queries as _psycopg_queries
except ImportError:  # pragma: no cover - SQLite-only installs
    _psycopg_queries = None
if _psycopg_queries is not None and hasattr(_psycopg_queries, "MAX_CACHED_STATEMENT_PARAMS"):
    _psycopg_queries.MAX_CACHED_STATEMENT_PARAMS = max(_psycopg_queries.MAX_CACHED_STATEMENT_PARAMS, 1000)
    _psycopg_queries.MAX_CACHED_STATEMENT_LENGTH = max(_psycopg_queries.MAX_CACHED_STATEMENT_LENGTH, 64 * 1024)


def _statement(dialect, table, keys: tuple[str, ...], index_elements: tuple[str, ...],
               returning: tuple[str, ...], count: int, locked: bool):
    quote = dialect.identifier_preparer.quote
    columns = [table.c[key] for key in keys]
    values = ", ".join("(" + ", ".join(f":{column.key}_{i}" for column in columns) + ")" for i in range(count))
    into = f"INSERT INTO {quote(table.name)} ({', '.join(quote(column.name) for column in columns)}) "
    if locked:
        # The lock is taken before the row is inserted, in the same round trip.
        sql = (f"WITH held AS (SELECT pg_advisory_xact_lock(hashtext(:advisory_lock))) "
               f"{into}SELECT new.* FROM (VALUES {values}) AS new, held ")
    else:
        sql = f"{into}VALUES {values} "
    sql += (f"ON CONFLICT ({', '.join(quote(table.c[name].name) for name in index_elements)}) "
            f"DO NOTHING RETURNING {', '.join(quote(table.c[name].name) for name in returning)}")
    binds = [bindparam(f"{column.key}_{i}", type_=column.type) for i in range(count) for column in columns]
    if locked:
        binds.append(bindparam("advisory_lock", type_=String()))
    return text(sql).bindparams(*binds).columns(*(table.c[name] for name in returning))


def insert_ignoring_conflicts(session: Session, model, index_elements: tuple[str, ...], rows: list[dict],
                              returning: tuple[str, ...] = ("id",), *, advisory_lock: str | None = None) -> list:
    """Insert ``rows`` (dicts with the same keys: every column's value) in one statement; returns the
    ``returning`` columns of the rows actually inserted. A row whose ``index_elements`` (a unique constraint)
    are taken is skipped.

    ``advisory_lock``: on PostgreSQL, first take the transaction-level advisory lock on that key in the same
    statement (see :func:`advisory_xact_lock`, which then knows it is held); elsewhere it is ignored."""
    if not rows:
        return []
    dialect = session.get_bind().dialect
    locked = advisory_lock is not None and dialect.name == "postgresql"
    keys = tuple(rows[0])
    cache_key = (model, keys, index_elements, returning, len(rows), dialect.name, locked)
    statement = _STATEMENTS.get(cache_key)
    if statement is None:
        statement = _STATEMENTS[cache_key] = DriverStatement(_statement(
            dialect, model.__table__, keys, index_elements, returning, len(rows), locked))
    parameters = {f"{key}_{i}": row[key] for i, row in enumerate(rows) for key in keys}
    if locked:
        parameters["advisory_lock"] = advisory_lock
    inserted = statement.execute(session, parameters)
    if locked:
        _held(session).add(advisory_lock)
    return inserted


def update_objects(session: Session, objects: list, values: list[dict]) -> None:
    """Set each object's columns to its dict of ``values`` (the same keys for all), in one statement for all of
    them (``WITH v AS (VALUES ...) UPDATE ... FROM v``) instead of the flush's UPDATE per row; the objects then
    hold those values as committed, so the next flush has nothing to write for them."""
    if not objects:
        return
    model = type(objects[0])
    dialect = session.get_bind().dialect
    keys = tuple(values[0])
    cache_key = ("update", model, keys, len(objects), dialect.name)
    statement = _STATEMENTS.get(cache_key)
    if statement is None:
        statement = _STATEMENTS[cache_key] = DriverStatement(_update_statement(dialect, model.__table__, keys,
                                                                               len(objects)))
    parameters = {"id_%d" % i: instance.id for i, instance in enumerate(objects)}
    for i, row in enumerate(values):
        parameters.update((f"{key}_{i}", row[key]) for key in keys)
    if session.autoflush:
        session.flush()  # the objects' other changes first, as for an ORM statement
    statement.execute(session, parameters)
    for instance, row in zip(objects, values):
        for key, value in row.items():
            set_committed_value(instance, key, value)


def _update_statement(dialect, table, keys: tuple[str, ...], count: int):
    quote = dialect.identifier_preparer.quote
    columns = [table.c.id, *(table.c[key] for key in keys)]
    # The binds are typed, so on PostgreSQL each value carries its column's cast (VALUES has no types of its own).
    rows = ", ".join("(" + ", ".join(f":{column.key}_{i}" for column in columns) + ")" for i in range(count))
    names = ", ".join(quote(column.name) for column in columns)
    target = quote(table.name)
    assignments = ", ".join(f"{quote(column.name)} = v.{quote(column.name)}" for column in columns[1:])
    sql = (f"WITH v ({names}) AS (VALUES {rows}) UPDATE {target} SET {assignments} FROM v "
           f"WHERE {target}.{quote(table.c.id.name)} = v.{quote(table.c.id.name)}")
    return text(sql).bindparams(*(bindparam(f"{column.key}_{i}", type_=column.type)
                                  for i in range(count) for column in columns))


def _compile_for(statement, dialect) -> tuple:
    """``statement`` compiled once for ``dialect``: its SQL in the driver's own parameter style, the constant
    parameters, each parameter's bind processor, the parameters' order (positional styles), each returned column's
    result processor (None when no column has one) and the returned columns' keys."""
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    processors = {}
    for name, value in compiled.params.items():
        bind = compiled.binds.get(name)
        if bind is not None and value is None:
            processors[name] = bind.type.dialect_impl(dialect).bind_processor(dialect)
        elif not isinstance(value, (str, int)):
            raise TypeError(f"{name}: only literal strings and integers besides the parameters")
    names = compiled.positiontup if compiled.positional else None
    columns = list(getattr(compiled.statement, "selected_columns", ()))
    readers = [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns]
    return (compiled.string, dict(compiled.params), processors, names, readers if any(readers) else None,
            [column.key for column in columns])


def _arguments(constants: dict, processors: dict, names, values: dict):
    parameters = dict(constants)
    for name, processor in processors.items():
        value = values[name]
        parameters[name] = processor(value) if processor and value is not None else value
    return [parameters[name] for name in names] if names is not None else parameters


def _read(readers, row) -> tuple:
    return tuple(read(value) if read else value for read, value in zip(readers, row))


class DriverStatement:
    """A statement compiled once per dialect and run with ``Connection.exec_driver_sql`` (so SQLAlchemy's events
    and error wrapping still apply), for the multi-row statements of a batch: SQLAlchemy would otherwise build the
    cache key of every one of their binds (one per value) and process each parameter through the compiled
    statement on every execution, a third of their CPU. Values go through each column's bind processor and
    returned columns through their result processors, as from Core; rows come back as named tuples."""

    def __init__(self, statement):
        self._statement = statement
        self._compiled: dict[str, tuple] = {}

    def execute(self, session: Session, values: dict) -> list:
        # Like session.execute of a text statement: in the session's transaction, without a flush first.
        connection = session.connection()
        dialect = connection.dialect
        compiled = self._compiled.get(dialect.name) or self._compile(dialect)
        sql, constants, processors, names, readers, row_type = compiled
        arguments = _arguments(constants, processors, names, values)
        # A list would be read as many rows of parameters (executemany).
        result = connection.exec_driver_sql(sql, tuple(arguments) if names is not None else arguments)
        if row_type is None:
            return []
        rows = result.fetchall()
        return [row_type(*(row if readers is None else _read(readers, row))) for row in rows]

    def _compile(self, dialect) -> tuple:
        sql, constants, processors, names, readers, keys = _compile_for(self._statement, dialect)
        row_type = collections.namedtuple("Row", keys) if keys else None
        compiled = self._compiled[dialect.name] = (sql, constants, processors, names, readers, row_type)
        return compiled


def advisory_xact_lock(session: Session, key: str) -> None:
    """Hold PostgreSQL's transaction-level advisory lock on ``key`` until the transaction ends, so work on the
    same thing in two transactions is serialised (no-op elsewhere: SQLite has one writer anyway). A lock this
    transaction already holds costs no round trip."""
    if session.get_bind().dialect.name != "postgresql" or key in _held(session):
        return
    session.execute(_LOCK, {"key": key})
    _held(session).add(key)


_LOCK = text("SELECT pg_advisory_xact_lock(hashtext(:key))")


def advisory_xact_locks(session: Session, keys: list[str]) -> None:
    """:func:`advisory_xact_lock` on many keys in one statement (a batch of orders). They are taken in the order
    of their lock numbers, the same in every transaction, so two transactions locking overlapping sets wait for
    each other instead of deadlocking."""
    if session.get_bind().dialect.name != "postgresql":
        return
    held = _held(session)
    wanted = sorted(set(keys) - held)
    if not wanted:
        return
    session.execute(_LOCKS, {"keys": wanted})
    held.update(wanted)


_LOCKS = text("SELECT count(pg_advisory_xact_lock(lock)) FROM (SELECT DISTINCT hashtext(key) AS lock "
              "FROM unnest(CAST(:keys AS text[])) AS key ORDER BY lock) AS locks")


# --- what one transaction knows ---------------------------------------------------------------------------
# ``session.info`` keys holding what is true for one transaction only (the locks it holds, the settings it read):
# dropped when the transaction ends (commit, rollback or close) and at any savepoint rollback, which releases
# the locks taken inside it and may undo what was read or written there.

_TRANSACTION_SCOPED: set[str] = set()


def transaction_scoped(key: str) -> str:
    """Declare a ``session.info`` key that lives for one transaction; returns the key."""
    _TRANSACTION_SCOPED.add(key)
    return key


def _forget(session: Session) -> None:
    for key in _TRANSACTION_SCOPED:
        session.info.pop(key, None)


@event.listens_for(Session, "after_transaction_end")
def _forget_at_transaction_end(session: Session, transaction) -> None:
    if transaction.parent is None:  # the database transaction ended: commit, rollback or close
        _forget(session)


@event.listens_for(Session, "after_soft_rollback")
def _forget_at_rollback(session: Session, _previous_transaction) -> None:
    _forget(session)


_HELD = transaction_scoped("coursegate_advisory_locks")


def _held(session: Session) -> set:
    return session.info.setdefault(_HELD, set())


def detached(model, values: dict):
    """A detached ``model`` object for a row whose column values (its key included) are ``values``, made as a
    query's loading makes one: the values go straight into the object, without the attribute events that
    ``model(**values)`` fires for each column and that nothing here listens to. Unset attributes load on use."""
    if not model.__mapper__.configured:  # the first object of a process: model(...) would configure them
        configure_mappers()
    instance = model._sa_class_manager.new_instance()
    instance.__dict__.update(values)
    make_transient_to_detached(instance)
    return instance


def attach(session: Session, model, values: dict):
    """The ORM object for a row just inserted with ``values`` (every column, its key included), without
    reading it back. Its attributes count as loaded, so nothing is written again at the next flush."""
    instance = detached(model, values)
    stale = session.identity_map.get(inspect(instance).key)
    if stale is not None:  # a row of a rolled-back transaction whose id the database handed out again
        session.expunge(stale)
    session.add(instance)
    return instance


def dialect_insert(session: Session, model):
    """The dialect's ``insert(model)``, which has ``on_conflict_do_nothing`` (PostgreSQL and SQLite). Unlike
    :func:`insert_ignoring_conflicts` it fills Python-side column defaults; use it for batches off the hot path."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    return insert(model)


# --- single-statement reads on the hottest paths -------------------------------------------------------------
# A request that only reads, in one statement, needs neither a transaction nor the pool's pre-ping: through the
# session it costs BEGIN, the pre-ping's SELECT 1, the statement and ROLLBACK (four round trips) plus the ORM's
# and Core's per-execution work. Here it is the statement alone, on an autocommit twin of the app's engine, with
# the SQL compiled once per dialect from a Core select (so the rules it uses, e.g. ``Grant.gives_access_at``, stay
# in one place). Every execution reads what is committed at that moment: nothing is cached but the SQL text.

_TWINS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_TWINS_LOCK = threading.Lock()


def autocommit_engine(engine: Engine) -> Engine:
    """A second engine on ``engine``'s database, created once per engine (so per process: gunicorn workers each
    make their own after the fork), with the app's engine options but autocommit and no pre-ping; disposed with
    ``engine``. :meth:`Read.rows` retries a read once when it finds its connection dead, which is what the
    pre-ping guards against, without a round trip per request."""
    twin = _TWINS.get(engine)
    if twin is not None:
        return twin
    with _TWINS_LOCK:
        twin = _TWINS.get(engine)
        if twin is None:
            options = dict(current_app.config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
            options.update(pool_pre_ping=False, isolation_level="AUTOCOMMIT")
            twin = _TWINS[engine] = create_engine(engine.url, **options)
            event.listen(engine, "engine_disposed", lambda _engine: twin.dispose())
    return twin


class Read:
    """One SELECT, compiled once per dialect, run on a raw DBAPI cursor of :func:`autocommit_engine`.

    ``build()`` returns the select; its parameters are ``bindparam(name, None)`` (typed where the driver needs
    the column's processing, e.g. a UTC datetime on SQLite); any other value in it must be a literal string or
    integer. Each column's value comes back as its type reads it (a datetime on SQLite, an ``EncryptedText``
    decrypted), as from Core. Driver errors are raised as SQLAlchemy's (``DataError`` and the like), as from the
    ORM."""

    def __init__(self, build: Callable[[], Select]):
        self._build = build
        self._compiled: dict[str, tuple] = {}

    def _compile(self, dialect) -> tuple:
        return _compile_for(self._build(), dialect)

    def rows(self, engine: Engine, **values) -> list[tuple]:
        dialect = engine.dialect
        compiled = self._compiled.get(dialect.name)
        if compiled is None:
            compiled = self._compiled[dialect.name] = self._compile(dialect)
        sql, constants, processors, names, readers, _ = compiled
        arguments = _arguments(constants, processors, names, values)
        for attempt in (1, 2):
            connection = engine.raw_connection()
            cursor = None
            try:
                cursor = connection.cursor()
                cursor.execute(sql, arguments)
                rows = cursor.fetchall()
                return rows if readers is None else [_read(readers, row) for row in rows]
            except dialect.loaded_dbapi.Error as error:
                if attempt == 1 and dialect.is_disconnect(error, connection.dbapi_connection, cursor):
                    connection.invalidate()  # e.g. PostgreSQL restarted since: once more on a new connection
                    continue
                raise DBAPIError.instance(sql, arguments, error, dialect.loaded_dbapi.Error) from error
            finally:
                if cursor is not None:
                    cursor.close()
                connection.close()
        raise AssertionError("unreachable")
