"""gunicorn settings for production (see docs/deploy.md). Every value can be overridden on the command line."""

import os
import sys

bind = os.environ.get("COURSEGATE_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("COURSEGATE_THREADS", "4"))
worker_class = "gthread"
timeout = 30
graceful_timeout = 30
keepalive = 5
# Our own JSON request log replaces gunicorn's access log (which would print raw paths holding tokens).
accesslog = None
errorlog = "-"
wsgi_app = "app:create_app()"


def on_starting(server):
    # Rate limits counted in each worker's memory let N workers allow N times the limit: refuse to start,
    # unless the operator said per-process limits are what they want (then say so loudly).
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


def child_exit(server, worker):
    # Prometheus multiprocess mode: drop the dead worker's live gauges.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
