"""The extension objects, created once and bound to an app in ``create_app``.

Domain modules import from here; nothing but the entry points imports ``app.py``.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime

from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import DateTime, Engine, MetaData, TypeDecorator, event
from sqlalchemy.orm import DeclarativeBase, registry

import timeutil

# Stable constraint names so Alembic migrations (and SQLite batch mode) can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC in, timezone-aware UTC out, on SQLite (which drops tzinfo) and PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return timeutil.as_utc(value)

    def process_result_value(self, value: datetime | None, dialect):
        return None if value is None else timeutil.as_utc(value)


@event.listens_for(Engine, "connect")
def _sqlite_connect(dbapi_connection, connection_record) -> None:
    """SQLite: WAL lets readers and the one writer work at the same time; the busy timeout makes writers
    queue rather than fail; foreign keys behave as on PostgreSQL."""
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


@event.listens_for(Engine, "savepoint")
def _sqlite_savepoint(conn, name) -> None:
    """pysqlite begins a transaction lazily, at the first write. A SAVEPOINT issued before that would open
    a transaction of its own that its RELEASE commits, taking everything before it along: open the real
    transaction first. (Transactions still start at the first write, so a read never holds a snapshot that
    a later write could find stale, which SQLite refuses at once rather than waiting.)"""
    if conn.dialect.name != "sqlite":
        return
    dbapi_connection = conn.connection.dbapi_connection
    if not dbapi_connection.in_transaction:
        dbapi_connection.execute("BEGIN")


class Base(DeclarativeBase):
    registry = registry(
        metadata=MetaData(naming_convention=NAMING_CONVENTION),
        type_annotation_map={datetime: UTCDateTime()},
    )


db = SQLAlchemy(model_class=Base)
migrate = Migrate()


# --- the JSON API (flask-smorest) with our error contract ------------------------------------------

from flask_smorest import Api  # noqa: E402

from errors import ErrorSchema  # noqa: E402


class CoursegateApi(Api):
    """flask-smorest documents its own integer ``code``; ours is a stable string. Errors are produced by
    the handlers registered in ``app.py``; this class only documents that shape in the spec."""

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self):  # the app factory registers ours
        pass

    def _register_pagination_header(self):
        # smorest documents the header as an object; what it sends is that object as JSON text.
        self.spec.components.header("PAGINATION", {
            "description": "Pagination metadata as a JSON object in a string: total, total_pages, first_page, "
                           "last_page, page, previous_page, next_page.",
            "schema": {"type": "string", "example": '{"total": 120, "total_pages": 3, "first_page": 1, '
                                                    '"last_page": 3, "page": 1, "next_page": 2}'},
        }, lazy=True)


api = CoursegateApi()


from apispec import BasePlugin  # noqa: E402


class OptionalBodiesPlugin(BasePlugin):
    """apispec plugin: a JSON body whose schema requires no field may be left out (it reads as ``{}``, e.g. a
    PATCH that changes nothing), so the spec must not call it required."""

    def init_spec(self, spec):
        super().init_spec(spec)
        self.spec = spec

    def operation_helper(self, path=None, operations=None, **kwargs):
        for operation in (operations or {}).values():
            body = operation.get("requestBody") if isinstance(operation, dict) else None
            if not isinstance(body, dict):
                continue
            schema = body.get("content", {}).get("application/json", {}).get("schema")
            if isinstance(schema, dict) and "$ref" in schema:
                schema = self.spec.components.schemas.get(schema["$ref"].rsplit("/", 1)[-1])
            if isinstance(schema, dict) and not schema.get("required"):
                body["required"] = False


# --- request bodies the API cannot read ----------------------------------------------------------------------

import json  # noqa: E402

from flask_smorest import Blueprint as _SmorestBlueprint  # noqa: E402
from webargs.flaskparser import FlaskParser  # noqa: E402


class BodyParser(FlaskParser):
    """webargs' parser, with JSON nested deeper than Python can read answered as invalid JSON (400), not 500."""

    def _raw_load_json(self, req):
        try:
            return super()._raw_load_json(req)
        except RecursionError:
            raise json.JSONDecodeError("The JSON nests too deeply.", doc="(too deep)", pos=0) from None


# flask-smorest reads the parser from this class attribute (its documented hook) on every blueprint.
_SmorestBlueprint.ARGUMENTS_PARSER = BodyParser()


# --- CSRF for server-rendered forms ------------------------------------------------------------------
# Not applied by default (WTF_CSRF_CHECK_DEFAULT is False): the JSON API and cart webhooks are not forms.
# Every page blueprint protects itself with ``protect_forms(bp)``.

from flask import Blueprint, current_app  # noqa: E402
from flask_wtf import CSRFProtect  # noqa: E402

csrf = CSRFProtect()


def protect_forms(bp: Blueprint) -> None:
    """Check the CSRF token of every form posted to ``bp`` (tests not about CSRF may switch it off)."""

    @bp.before_request
    def _csrf() -> None:
        if current_app.config.get("WTF_CSRF_ENABLED", True):
            csrf.protect()


def keep_private(bp: Blueprint, cache_control: str = "private, no-store") -> None:
    """``bp``'s pages carry personal data, CSRF tokens or a token in their URL: never cached. (Every response
    is no-store unless it says otherwise, and the Referrer-Policy keeps URLs on this site: see security.py;
    this names the blueprints that must never opt out.)"""

    @bp.after_request
    def _private(response):
        response.headers.setdefault("Cache-Control", cache_control)
        return response


# --- rate limits (Flask-Limiter) -------------------------------------------------------------------------
# Storage comes from RATELIMIT_STORAGE_URI (see config.py: Redis when configured, memory otherwise).
# No default limits: each form that needs one declares it (e.g. /login per IP and per email).

from flask import request  # noqa: E402
from flask_limiter import Limiter  # noqa: E402
from flask_limiter.util import get_remote_address  # noqa: E402

# Blueprints that declare no limit, on the hottest paths (a cart's deliveries, a front end's access checks):
# skip the limiter's per-request work of finding out that no limit applies. A limit added to one of them must
# take its blueprint off this list (tests/membership/test_rate_limit_storage.py checks that none is declared
# there).
UNLIMITED_BLUEPRINTS = frozenset({"webhooks", "access_api"})


class _Limiter(Limiter):
    def _check_request_limit(self, callable_name: str | None = None, in_middleware: bool = True) -> None:
        # Before every request the limiter looks for application-wide, default, blueprint and meta limits, a tenth
        # of a /healthz request's CPU. Coursegate declares none (each form declares its limit on its view, checked
        # by the view's decorator: in_middleware=False), so unless an operator configures some
        # (RATELIMIT_DEFAULT, RATELIMIT_APPLICATION) there is nothing to find.
        if in_middleware and (request.blueprint in UNLIMITED_BLUEPRINTS or not self._limits_before_requests()):
            return
        super()._check_request_limit(callable_name, in_middleware)

    def _limits_before_requests(self) -> bool:
        manager = self.limit_manager
        return bool(manager._application_limits or manager._default_limits or manager._blueprint_limits
                    or manager._endpoint_hints or self._meta_limits)


limiter = _Limiter(key_func=get_remote_address)
