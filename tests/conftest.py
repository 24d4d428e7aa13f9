"""Test fixtures: a real database (SQLite file, or PostgreSQL via DATABASE_URL), real SMTP, real HTTP.

The schema is built once per session through the migrations; each test then starts from empty tables
(deleted, not rolled back), so live-server and SMTP threads that open their own connections see the
same data as the test.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

import pytest
import responses as responses_lib
from sqlalchemy import create_engine, text

import timeutil
from app import create_app
from config import database_uri

ROOT = Path(__file__).resolve().parent.parent
# Real cart deliveries (personal data and secrets replaced), copied from shared/reference/fixtures so the
# suite runs from a bare clone.
FIXTURES = ROOT / "tests" / "payloads"

_DB_URL = os.environ.get("DATABASE_URL")
# One key for the test app and the processes the production tests start: secrets are encrypted under it.
TEST_SECRET_KEY = "test-secret-key-not-for-production"
IS_POSTGRES = bool(_DB_URL and _DB_URL.startswith(("postgres://", "postgresql")))


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    if IS_POSTGRES:
        url = database_uri(_DB_URL)
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:  # a clean schema each run
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'coursegate-test.sqlite3'}"


@pytest.fixture(scope="session")
def _schema(database_url, tmp_path_factory):
    from flask_migrate import upgrade

    app = create_app(_base_config(database_url, tmp_path_factory.mktemp("instance-schema")))
    with app.app_context():
        upgrade()
        from extensions import db

        db.engine.dispose()
    return database_url


def _base_config(database_url: str, tmp: Path) -> dict:
    return {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_url,
        "SECRET_KEY": TEST_SECRET_KEY,
        "SECRET_KEY_FALLBACKS": [],
        "SITE_URL": "http://coursegate.test",
        "SITE_NAME": "Test Academy",
        "MAIL_SERVER": None,
        "MAIL_DEFAULT_SENDER": "Test Academy <hello@coursegate.test>",
        "CELERY_BROKER_URL": None,
        "COURSEGATE_MAIL_DIR": str(tmp / "mail"),
        "RATELIMIT_ENABLED": False,
        "WTF_CSRF_ENABLED": True,
    }


def _truncate(app) -> None:
    from extensions import db

    with app.app_context():
        tables = list(reversed(db.metadata.sorted_tables))
        with db.engine.begin() as conn:
            if IS_POSTGRES:
                names = ", ".join(f'"{t.name}"' for t in tables)
                conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
            else:
                for table in tables:
                    conn.execute(table.delete())


@pytest.fixture
def app_config(_schema, tmp_path):
    """Override in a test module (or extend) to change settings before the app is built."""
    return _base_config(_schema, tmp_path)


@pytest.fixture
def app(app_config):
    app = create_app(app_config)
    _truncate(app)
    yield app
    import jobs
    from extensions import db

    assert jobs.drain(), "background jobs still running after the test"

    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    timeutil.set_clock(None)


@pytest.fixture
def make_app(app, app_config):
    """Another app on the same (emptied) database: ``make_app(config)`` with a whole config, or
    ``make_app(**overrides)`` on top of this test's config. Its connections are closed after the test."""
    from extensions import db

    made = []

    def make(config: dict | None = None, **overrides):
        other = create_app({**(config if config is not None else app_config), **overrides})
        made.append(other)
        return other

    yield make
    for other in made:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def app_ctx(app):
    with app.app_context():
        yield


@pytest.fixture
def session(app_ctx):
    from extensions import db

    return db.session


@pytest.fixture
def api_key(app):
    from extensions import db
    from membership import auth

    with app.app_context():
        _, key = auth.create_api_key(db.session, "tests")
        db.session.commit()
    return key


class ApiClient:
    """The test client with the owner's bearer key on every call."""

    def __init__(self, client, key: str):
        self.client = client
        self.headers = {"Authorization": f"Bearer {key}"}

    def __getattr__(self, method):
        def call(path, **kwargs):
            headers = {**self.headers, **kwargs.pop("headers", {})}
            return getattr(self.client, method)(path, headers=headers, **kwargs)

        return call


@pytest.fixture
def api(client, api_key):
    return ApiClient(client, api_key)


@pytest.fixture
def mocked_responses():
    with responses_lib.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


# --- a real SMTP server, in-process ------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SmtpSink:
    """aiosmtpd on 127.0.0.1: collects every message it receives."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages: list = []
        self.port = free_port()
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                import email
                from email import policy

                message = email.message_from_bytes(envelope.content, policy=policy.default)
                sink.messages.append(message)
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self):
        self.controller.start()

    def stop(self):
        self.controller.stop()

    def restart(self):
        """Listen again on the same port after ``stop()``: an SMTP outage that ends."""
        from aiosmtpd.controller import Controller

        self.controller = Controller(self.controller.handler, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def wait_for(self, count: int, timeout: float = 5.0) -> list:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.messages


@pytest.fixture
def smtp():
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def smtp_config(app_config, smtp):
    """Use as ``app_config`` override to send through the in-process SMTP server."""
    return {**app_config, "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp.port, "MAIL_USE_TLS": False,
            "MAIL_TIMEOUT": 5, "MAIL_BACKEND": "smtp"}  # flask-mailman would use its in-memory backend under TESTING


# --- a live HTTP server (real sockets, its own thread and DB connections) -------------------------------

@pytest.fixture
def live_server(app):
    from werkzeug.serving import make_server

    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()
    thread.join(timeout=5)


def pytest_collection_modifyitems(config, items):
    if IS_POSTGRES:
        return
    skip = pytest.mark.skip(reason="needs DATABASE_URL pointing at PostgreSQL")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


def fixture_path(*parts: str) -> Path:
    return FIXTURES.joinpath(*parts)


