"""gunicorn settings for production (see docs/deploy.md). Every value can be overridden on the command line."""

import json
import os
import sys

from gunicorn import util

bind = os.environ.get("COURSEGATE_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("COURSEGATE_THREADS", "8"))  # webhook requests mostly wait for their batch
# gthread, taking a connection only while a thread is free for it, so connections spread over the workers.
worker_class = "gunicorn_worker.BalancedThreadWorker"
timeout = 30
graceful_timeout = 30
keepalive = 5
# Our own JSON request log replaces gunicorn's access log (which would print raw paths holding tokens).
accesslog = None
errorlog = "-"
wsgi_app = "app:create_app()"
# One header may be 64 KiB (gunicorn's default is 8 KiB), so a generic cart's X-Coursegate-Signature with many v1
# values reaches the app, which answers a JSON 401 past its own cap (fulfillment/signatures.py MAX_SIGNATURES).
limit_request_field_size = 64 * 1024


def _json_error(sock, status_int, reason, mesg):
    """What gunicorn answers itself (a header over the limit, a malformed request line) in the service's error
    shape, ``{"code", "message"}``, instead of its HTML page: clients of /api and /webhooks always read JSON."""
    body = json.dumps({"code": "_".join(reason.lower().split()) or f"http_{status_int}",
                       "message": f"{reason}: {mesg}" if mesg else reason})
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    util.write_nonblock(sock, (head + body).encode("latin-1"))


# gunicorn has no setting for its error bodies; write_error (its one writer of them, same signature since 19.x)
# is replaced when this file is read, in the master, before any worker starts.
util.write_error = _json_error


def on_starting(server):
    # Rate limits counted in each worker's memory let N workers allow N times the limit: refuse to start,
    # unless the operator said per-process limits are what they want (then say so loudly).
    # Imported here, not at the top: gunicorn reads this file before it puts the project on sys.path.
    import config

    problem = config.per_process_limits_problem(os.environ, server.cfg.workers)
    if problem is None:
        return
    accepted = os.environ.get("COURSEGATE_RATELIMIT_PER_PROCESS", "")
    if config.parse_boolean("COURSEGATE_RATELIMIT_PER_PROCESS", accepted):
        server.log.warning("Rate limits are per process: %s", problem)
        return
    server.log.error("Refusing to start: %s", problem)
    sys.exit(1)


def post_fork(server, worker):
    # In the worker, before it loads the app: a database connection kept open for each thread (config.size_pools).
    os.environ.setdefault("COURSEGATE_DB_POOL_SIZE", str(worker.cfg.threads + 2))


def child_exit(server, worker):
    # Prometheus multiprocess mode: drop the dead worker's live gauges.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
