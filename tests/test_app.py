import os
from pathlib import Path

import pytest

from app import create_app
from config import ConfigError, from_environment


def test_secret_key_is_generated_once_and_kept(tmp_path):
    first = from_environment(str(tmp_path), {})["SECRET_KEY"]
    second = from_environment(str(tmp_path), {})["SECRET_KEY"]
    assert first == second and len(first) > 40
    assert (tmp_path / "secret_key").read_text() == first
    other = from_environment(str(tmp_path / "other"), {})["SECRET_KEY"]
    assert other != first


def test_environment_contract(tmp_path):
    settings = from_environment(str(tmp_path), {
        "DATABASE_URL": "postgresql://root@127.0.0.1:5432/test",
        "SECRET_KEY": "s3cret",
        "SITE_URL": "https://members.example.com/",
        "MAIL_SERVER": "smtp.example.com",
        "MAIL_PORT": "587",
        "MAIL_USE_TLS": "true",
        "MAIL_DEFAULT_SENDER": "Academy <hi@example.com>",
        "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    })
    assert settings["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://root@127.0.0.1:5432/test"
    assert settings["SECRET_KEY"] == "s3cret"
    assert settings["SITE_URL"] == "https://members.example.com"
    assert settings["MAIL_PORT"] == 587 and settings["MAIL_USE_TLS"] is True
    assert settings["SESSION_COOKIE_SECURE"] is True
    assert settings["CELERY_BROKER_URL"] == "redis://127.0.0.1:6379/0"


def test_default_database_is_sqlite_under_instance(tmp_path):
    settings = from_environment(str(tmp_path), {})
    assert settings["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{Path(tmp_path) / 'coursegate.sqlite3'}"
    assert settings["SITE_URL"] == "http://127.0.0.1:5000"


def test_bad_environment_values_are_refused(tmp_path):
    import pytest

    with pytest.raises(ConfigError, match="MAIL_USE_TLS"):
        from_environment(str(tmp_path), {"MAIL_USE_TLS": "maybe"})
    with pytest.raises(ConfigError, match="MAIL_PORT"):
        from_environment(str(tmp_path), {"MAIL_PORT": "twenty-five"})


def test_prefixed_environment_reaches_config(monkeypatch, app_config):
    monkeypatch.setenv("COURSEGATE_SITE_NAME", "Env Academy")
    monkeypatch.setenv("COURSEGATE_METRICS_TOKEN", "from-env")
    monkeypatch.setenv("COURSEGATE_GRACE_LIMIT", "12")
    app = create_app({k: v for k, v in app_config.items() if k != "SITE_NAME"})
    assert app.config["SITE_NAME"] == "Env Academy"
    # Settings are reachable by the full environment name too, with values parsed as JSON where they can be.
    assert app.config["COURSEGATE_METRICS_TOKEN"] == "from-env" == app.config["METRICS_TOKEN"]
    assert app.config["COURSEGATE_GRACE_LIMIT"] == 12
    from extensions import db

    with app.app_context():
        db.engine.dispose()


def test_unknown_api_route_is_json_and_page_is_html(client):
    response = client.get("/api/v1/no-such-thing")
    assert response.status_code == 404
    assert response.json["code"] == "not_found" and response.json["message"]
    page = client.get("/no-such-page")
    assert page.status_code == 404 and page.mimetype == "text/html"


def test_healthz(client):
    assert client.get("/healthz").json == {"status": "ok"}


def test_behind_a_trusted_proxy_the_client_address_comes_from_x_forwarded_for(make_app):
    from flask import request

    def remote(app):
        @app.get("/_remote")
        def _remote():
            return request.remote_addr or ""

        return app.test_client().get("/_remote", headers={"X-Forwarded-For": "198.51.100.7"},
                                     environ_base={"REMOTE_ADDR": "10.0.0.2"}).text

    assert remote(make_app()) == "10.0.0.2"  # no proxy configured: the header is not believed
    assert remote(make_app(TRUSTED_PROXIES=1)) == "198.51.100.7"


def test_trusted_proxies_can_be_listed_by_address(make_app):
    from flask import request

    app = make_app(TRUSTED_PROXIES="10.0.0.2, 10.1.0.0/16")

    @app.get("/_remote")
    def _remote():
        return f"{request.remote_addr} {request.scheme}"

    def remote(peer: str, forwarded: str) -> str:
        return app.test_client().get("/_remote", headers={"X-Forwarded-For": forwarded, "X-Forwarded-Proto": "https"},
                                     environ_base={"REMOTE_ADDR": peer}).text

    assert remote("10.0.0.2", "198.51.100.7") == "198.51.100.7 https"
    # Two listed proxies in a row; the client's own claim (left-most) is not believed past an untrusted hop.
    assert remote("10.0.0.2", "192.0.2.66, 198.51.100.7, 10.1.4.4") == "198.51.100.7 https"
    assert remote("203.0.113.9", "198.51.100.7") == "203.0.113.9 http"  # not a listed proxy: header ignored


@pytest.mark.parametrize("value, parsed", [(0, 0), ("", 0), (2, 2), ("1", 1), ("10.0.0.2", ["10.0.0.2"]),
                                           (["10.0.0.2", "::1"], ["10.0.0.2", "::1"])])
def test_trusted_proxies_setting(value, parsed):
    from security import trusted_proxies

    assert trusted_proxies(value) == parsed


@pytest.mark.parametrize("value", ["proxy.internal", -1, 1.5, "10.0.0.300"])
def test_a_wrong_trusted_proxies_setting_stops_the_start(make_app, value):
    with pytest.raises(ConfigError):
        make_app(TRUSTED_PROXIES=value)


def test_an_id_too_large_for_the_database_is_not_found(api, client):
    for too_large in (2**31, 10**30):
        response = api.get(f"/api/v1/members/{too_large}")
        assert response.status_code == 404 and response.json["code"] == "not_found"
        assert client.post(f"/webhooks/thrivecart/{too_large}", data={"event": "order.success"}).status_code == 404


def test_a_number_too_large_for_the_database_is_a_clear_error_not_a_500(api):
    response = api.get("/api/v1/events?integration_id=100000000000000000000")
    assert response.status_code == 422 and response.json["code"] == "value_out_of_range"
    assert api.get("/api/v1/members").status_code == 200  # the session is usable again


def test_a_page_past_any_the_database_could_hold_is_empty(api):
    # The spec allows any page number; beyond the database's OFFSET range there is simply nothing.
    response = api.get("/api/v1/members?page=100000000000000000000")
    assert response.status_code == 200 and response.json == []


def test_json_nested_deeper_than_python_reads_is_invalid_json(api):
    body = b'{"title": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    response = api.post("/api/v1/courses", data=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json["code"] == "invalid_json"


def test_production_never_generates_a_secret_key_and_refuses_to_start_without_one(tmp_path, monkeypatch):
    import pytest

    for env in ({"DATABASE_URL": "postgresql://coursegate@db.internal/coursegate"}, {"COURSEGATE_ENV": "production"}):
        settings = from_environment(str(tmp_path), env)
        assert settings["PRODUCTION"] is True and "SECRET_KEY" not in settings
    assert not (tmp_path / "secret_key").exists()
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("COURSEGATE_ENV", "production")
    with pytest.raises(ConfigError, match="SECRET_KEY is not set"):
        create_app()
    # Declared development on PostgreSQL (a developer's own database): the generated key is fine.
    dev = from_environment(str(tmp_path), {"DATABASE_URL": "postgresql://me@localhost/dev", "COURSEGATE_ENV": "development"})
    assert dev["PRODUCTION"] is False and dev["SECRET_KEY"]
    with pytest.raises(ConfigError, match="COURSEGATE_ENV"):
        from_environment(str(tmp_path), {"COURSEGATE_ENV": "prod"})


@pytest.mark.postgres
def test_postgresql_keeps_a_connection_open_per_request_thread(monkeypatch, make_app):
    # gunicorn.conf.py sets COURSEGATE_DB_POOL_SIZE to its threads (plus two) in each worker; SQLAlchemy's own
    # pool of 5 closed every connection past the fifth when returned, so 8 threads opened and closed backends.
    from extensions import db
    from sqlutil import autocommit_engine

    monkeypatch.setenv("COURSEGATE_DB_POOL_SIZE", "7")
    app = make_app()
    with app.app_context():
        assert db.engine.pool.size() == 7
        assert autocommit_engine(db.engine).pool.size() == 7
    monkeypatch.delenv("COURSEGATE_DB_POOL_SIZE")
    with make_app().app_context():
        assert db.engine.pool.size() == 10


def test_the_pool_size_setting_is_checked_and_sqlite_takes_none(tmp_path):
    from config import size_pools

    with pytest.raises(ConfigError, match="COURSEGATE_DB_POOL_SIZE"):
        size_pools({"SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://h/db"}, {"COURSEGATE_DB_POOL_SIZE": "many"})
    with pytest.raises(ConfigError, match="COURSEGATE_DB_POOL_SIZE"):
        size_pools({"SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://h/db"}, {"COURSEGATE_DB_POOL_SIZE": "0"})
    sqlite = {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite3'}",
              "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True}}
    size_pools(sqlite, {"COURSEGATE_DB_POOL_SIZE": "7"})
    assert sqlite["SQLALCHEMY_ENGINE_OPTIONS"] == {"pool_pre_ping": True}


def test_gunicorn_sizes_each_workers_pools_by_its_threads(monkeypatch):
    import runpy
    from types import SimpleNamespace

    from gunicorn import util

    monkeypatch.setattr(util, "write_error", util.write_error)  # the file replaces it when read
    monkeypatch.delenv("COURSEGATE_DB_POOL_SIZE", raising=False)
    settings = runpy.run_path(str(Path(__file__).resolve().parent.parent / "gunicorn.conf.py"))
    settings["post_fork"](None, SimpleNamespace(cfg=SimpleNamespace(threads=8)))
    assert os.environ.pop("COURSEGATE_DB_POOL_SIZE") == "10"
