"""What operators see: request ids, one JSON log line per request and per job, health and metrics.

Logs carry ids (request, member, event), never bodies, secrets, tokens or card data: the request line
names the route pattern (``/login/<token>``), not the path that holds the token.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import time
import uuid

from flask import Flask, Response, current_app, g, jsonify, request

# prometheus_client writes every process's values under PROMETHEUS_MULTIPROC_DIR from the first metric on, and
# crashes when the folder is missing: create it before any metric exists (every process, every command).
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)

from prometheus_client import (CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram,  # noqa: E402
                               generate_latest, multiprocess)
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select, text

import timeutil
from emails.models import OutboundEmail
from extensions import db

from security import came_through_a_proxy

logger = logging.getLogger("coursegate.request")
job_logger = logging.getLogger("coursegate.job")

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{8,64}$")

# --- metrics the code records as it works (per process; gunicorn aggregates via PROMETHEUS_MULTIPROC_DIR) ---
WEBHOOK_DELIVERIES = Counter("coursegate_webhook_deliveries_total", "Cart webhook deliveries by outcome",
                             ["integration", "status"])
FULFILMENT_SECONDS = Histogram("coursegate_fulfilment_seconds", "Time to store and process one delivery",
                               buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5))
FULFILMENT_BATCH_SIZE = Histogram("coursegate_fulfilment_batch_size", "Deliveries fulfilled in one transaction "
                                  "by the group-commit receiver", buckets=(1, 2, 4, 8, 16, 32, 64))
JOB_SECONDS = Histogram("coursegate_job_seconds", "Background job duration", ["job"])
BILLING_TICK_SECONDS = Histogram("coursegate_billing_tick_seconds", "Duration of one billing tick",
                                 buckets=(0.1, 0.5, 1, 5, 15, 30, 60, 120, 300))
BILLING_OUTCOMES = Counter("coursegate_billing_outcomes_total", "Billing tick outcomes", ["outcome"])
# A lost broker degrades (jobs run later from the database sweeps); it does not make a host unready.
BROKER_REACHABLE = Gauge("coursegate_broker_reachable", "1 when the Celery broker answered the last check",
                         multiprocess_mode="mostrecent")
BROKER_SEND_FAILURES = Counter("coursegate_broker_send_failures_total",
                               "Jobs that could not be sent to the broker (left for the sweeps)")


# --- logging -------------------------------------------------------------------------------------------

class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and any ``extra`` fields."""

    RESERVED = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        rid = getattr(record, "request_id", None) or request_id_var.get()
        if rid:
            entry["request_id"] = rid
        for key, value in vars(record).items():
            if key not in self.RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


JsonFormatter.converter = time.gmtime


def logging_config(level: str, fmt: str) -> dict:
    formatter = {"()": JsonFormatter} if fmt == "json" else {
        "format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "default"}},
        "root": {"level": level, "handlers": ["console"]},
        "loggers": {
            # The dev server's access log prints raw paths (login tokens included); ours prints the route.
            "werkzeug": {"level": "WARNING"},
            "alembic.runtime.plugins": {"level": "WARNING"},
        },
    }


# --- request ids and the request log -----------------------------------------------------------------------

def _start_request() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    g.request_started = time.perf_counter()
    g.request_id_token = request_id_var.set(g.request_id)


def _finish_request(response: Response) -> Response:
    response.headers["X-Request-ID"] = g.get("request_id", "")
    started = g.get("request_started")
    if started is not None:
        fields = {
            "event": "request",
            "request_id": g.get("request_id"),
            "method": request.method,
            "route": request.url_rule.rule if request.url_rule else None,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
        }
        for key in ("member_id", "event_id", "integration_id"):
            value = g.get(f"log_{key}")
            if value is not None:
                fields[key] = value
        logger.info("%s %s %s", request.method, fields["route"] or "(no route)", response.status_code, extra=fields)
    return response


def _reset_request_id(_exc=None) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        request_id_var.reset(token)


def log_job(name: str, started: float, outcome: str, **ids) -> None:
    duration = time.perf_counter() - started
    JOB_SECONDS.labels(name).observe(duration)
    job_logger.info("job %s %s", name, outcome, extra={"event": "job", "job": name, "outcome": outcome,
                                                       "duration_ms": round(duration * 1000, 2), **ids})


# --- health ------------------------------------------------------------------------------------------------

def migrations_head() -> str | None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    cfg = Config()
    cfg.set_main_option("script_location", os.path.join(os.path.dirname(__file__), "migrations"))
    return ScriptDirectory.from_config(cfg).get_current_head()


def readiness() -> tuple[bool, dict]:
    checks: dict = {}
    ok = True
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            try:
                current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
            except Exception:
                current = None
        head = migrations_head()
        checks["database"] = {"ok": True}
        checks["migrations"] = {"ok": current == head, "current": current, "head": head}
        ok = ok and current == head
    except Exception as exc:
        checks["database"] = {"ok": False, "error": type(exc).__name__}
        checks["migrations"] = {"ok": False, "error": "database unreachable"}
        ok = False
    broker = current_app.config.get("CELERY_BROKER_URL")
    if broker:
        try:
            celery_app = current_app.extensions["celery"]
            with celery_app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=2)
            checks["broker"] = {"ok": True}
            BROKER_REACHABLE.set(1)
        except Exception as exc:
            # Still ready: webhooks are stored and answered, and every job is re-triggered from its row by
            # the sweeps once the broker is back. Taking every host out of the balancer would lose orders.
            checks["broker"] = {"ok": False, "degraded": True, "error": type(exc).__name__,
                                "effect": "jobs wait in the database until the broker is back"}
            BROKER_REACHABLE.set(0)
    else:
        checks["broker"] = {"ok": True, "mode": "in-process (no broker configured)"}
    return ok, checks


# --- metrics -----------------------------------------------------------------------------------------------

class DatabaseCollector:
    """Gauges read from the database at scrape time, so every process reports the same truth."""

    def collect(self):
        emails = GaugeMetricFamily("coursegate_emails", "Emails in the outbox by status", labels=["status"])
        lag = GaugeMetricFamily("coursegate_job_queue_lag_seconds",
                                "Age of the oldest pending item per queue", labels=["queue"])
        try:
            rows = db.session.execute(select(OutboundEmail.status, func.count()).group_by(OutboundEmail.status))
            for status, count in rows:
                emails.add_metric([status], count)
            oldest = db.session.scalar(select(func.min(OutboundEmail.created_at))
                                       .where(OutboundEmail.status == "pending"))
            age = (timeutil.now() - timeutil.as_utc(oldest)).total_seconds() if oldest else 0.0
            lag.add_metric(["emails"], max(age, 0.0))
            for extra in current_app.extensions.get("coursegate_metric_sources", []):
                yield from extra()
        finally:
            db.session.rollback()
        yield emails
        yield lag


def metrics_view():
    token = current_app.config.get("COURSEGATE_METRICS_TOKEN")
    if token:
        import hmac

        given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), str(token).encode()):
            return jsonify(code="unauthorized", message="Metrics need 'Authorization: Bearer <metrics token>'."), 401
    elif request.remote_addr not in ("127.0.0.1", "::1") or came_through_a_proxy():
        # A reverse proxy on this machine connects from 127.0.0.1 too: what it forwards is not local.
        return jsonify(code="forbidden", message="Metrics are served to localhost only unless "
                                                 "COURSEGATE_METRICS_TOKEN is set."), 403
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        for collector in list(REGISTRY._collector_to_names):
            registry.register(collector)
    registry.register(DatabaseCollector())
    response = Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)
    response.headers["Cache-Control"] = "no-store"
    return response


def start_worker_exporter() -> None:
    """``COURSEGATE_WORKER_METRICS=host:port``: a Celery worker serves its job and billing metrics there.

    Jobs (the billing tick among them) run in the worker's pool processes, so the worker needs
    ``PROMETHEUS_MULTIPROC_DIR`` (a folder of its own) for its exporter to add them up.
    """
    address = os.environ.get("COURSEGATE_WORKER_METRICS")
    if not address:
        return
    from prometheus_client import REGISTRY, start_http_server

    host, _, port = address.rpartition(":")
    registry = REGISTRY
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        logging.getLogger(__name__).warning("COURSEGATE_WORKER_METRICS without PROMETHEUS_MULTIPROC_DIR: "
                                            "the pool processes' metrics are not exported")
    start_http_server(int(port), addr=host or "127.0.0.1", registry=registry)


def mark_process_dead(pid: int | None) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid or os.getpid())


def init_app(app: Flask) -> None:
    app.before_request(_start_request)
    app.after_request(_finish_request)
    app.teardown_request(_reset_request_id)

    @app.get("/healthz")
    def healthz():
        response = jsonify(status="ok")
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.get("/readyz")
    def readyz():
        ok, checks = readiness()
        degraded = any(check.get("degraded") for check in checks.values())
        response = jsonify(status="unavailable" if not ok else "degraded" if degraded else "ok", checks=checks)
        response.status_code = 200 if ok else 503
        response.headers["Cache-Control"] = "no-store"
        return response

    app.add_url_rule("/metrics", "metrics", metrics_view)
