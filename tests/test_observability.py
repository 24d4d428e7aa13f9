"""Request ids, the JSON request log, readiness and metrics."""

import json
import logging
import socket

import pytest

from observability import JsonFormatter


def test_request_id_is_echoed_or_generated(client):
    given = client.get("/healthz", headers={"X-Request-ID": "abc12345-from-proxy"})
    assert given.headers["X-Request-ID"] == "abc12345-from-proxy"
    generated = client.get("/healthz").headers["X-Request-ID"]
    assert len(generated) == 32 and generated != "abc12345-from-proxy"
    # Garbage is not echoed back into headers and logs.
    assert client.get("/healthz", headers={"X-Request-ID": "bad id\twith spaces"}).headers["X-Request-ID"] != \
        "bad id\twith spaces"


def test_one_json_line_per_request_naming_the_route_not_the_path(client, api_key, caplog):
    caplog.set_level(logging.INFO, logger="coursegate.request")
    client.get("/api/v1/members/12345", headers={"Authorization": f"Bearer {api_key}",
                                                  "X-Request-ID": "req-0000000001"})
    records = [r for r in caplog.records if r.name == "coursegate.request"]
    assert len(records) == 1
    line = json.loads(JsonFormatter().format(records[0]))
    assert line["route"] == "/api/v1/members/<int:member_id>"
    assert line["status"] == 404 and line["method"] == "GET" and line["duration_ms"] >= 0
    assert line["request_id"] == "req-0000000001"
    assert "12345" not in json.dumps(line) and api_key not in json.dumps(line)


def test_health_endpoints_are_not_cached(client):
    response = client.get("/healthz")
    assert response.json == {"status": "ok"} and response.headers["Cache-Control"] == "no-store"
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json
    assert ready.json["status"] == "ok"
    assert ready.json["checks"]["migrations"]["current"] == ready.json["checks"]["migrations"]["head"]
    assert ready.headers["Cache-Control"] == "no-store"


def test_readyz_is_unavailable_without_the_database(make_app, tmp_path):
    app = make_app(SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/missing/dir/db.sqlite3")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"]["database"]["ok"] is False
    assert "sqlite" not in json.dumps(response.json)  # no connection details leak


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_broker_degrades_readiness_without_taking_the_host_out(make_app):
    app = make_app(CELERY_BROKER_URL=f"redis://127.0.0.1:{_closed_port()}/0")
    client = app.test_client()
    response = client.get("/readyz")
    # Webhooks are still taken and stored; jobs wait in the database for the sweeps: the host stays in.
    assert response.status_code == 200 and response.json["status"] == "degraded"
    assert response.json["checks"]["broker"] == {"ok": False, "degraded": True, "error": "OperationalError",
                                                 "effect": "jobs wait in the database until the broker is back"}
    assert "redis://" not in json.dumps(response.json)
    metrics = client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).data.decode()
    assert "coursegate_broker_reachable 0.0" in metrics


def test_metrics_for_localhost_or_with_the_token(make_app, client):
    local = client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert local.status_code == 200
    assert b"coursegate_emails" in local.data or b"coursegate_job_queue_lag_seconds" in local.data
    remote = client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.5"})
    assert remote.status_code == 403 and remote.json["code"] == "forbidden"
    # A reverse proxy on this machine connects from 127.0.0.1 too; what it forwards is not local.
    proxied = client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"},
                         headers={"X-Forwarded-For": "203.0.113.5"})
    assert proxied.status_code == 403

    guarded = make_app(COURSEGATE_METRICS_TOKEN="metrics-secret").test_client()
    assert guarded.get("/metrics").status_code == 401
    ok = guarded.get("/metrics", headers={"Authorization": "Bearer metrics-secret"},
                     environ_base={"REMOTE_ADDR": "203.0.113.5"})
    assert ok.status_code == 200 and b"coursegate_job_queue_lag_seconds" in ok.data


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_needs_no_key(client, path):
    assert client.get(path).status_code == 200
