"""gunicorn settings for production (see docs/deploy.md). Every value can be overridden on the command line."""

import os

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


def child_exit(server, worker):
    # Prometheus multiprocess mode: drop the dead worker's live gauges.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
