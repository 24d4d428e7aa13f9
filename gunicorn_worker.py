"""gunicorn's threaded worker, taking a connection only while it has a thread free for it.

Every worker of a gunicorn server accepts from the same listening socket, and a stock ``gthread`` worker accepts
whenever its main thread is awake: it can take far more connections than it has threads, to queue their requests
while its siblings sit idle. Carts and proxies that keep connections open stay with whichever worker won them,
so under load one worker served 13 or 14 of 16 kept-alive connections, 8 at a time, and the other 2 or 3
(bench/webhooks.py). The busy worker's requests queued behind its threads, and the idle one's group-commit batches
shrank to one or two deliveries, each paying a whole transaction.

This worker stops accepting while every one of its threads has a request: a new connection stays in the kernel's
queue for a worker with a thread free (a sibling now, or this one as soon as a request finishes), which is where
it would have waited anyway. Connections it already holds are served as before.

It relies on gunicorn 27's ``ThreadWorker`` (``enqueue_req``, ``finish_request``, ``set_accept_enabled``);
pyproject.toml pins that major version, and tests/test_gunicorn_worker.py runs it under a real gunicorn.
"""

from __future__ import annotations

from gunicorn.workers.gthread import ThreadWorker


class BalancedThreadWorker(ThreadWorker):

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.in_flight = 0  # requests submitted to the thread pool and not finished (main thread only)

    def saturated(self) -> bool:
        return self.in_flight >= self.cfg.threads

    def enqueue_req(self, conn):
        self.in_flight += 1
        if self.saturated():
            self.set_accept_enabled(False)
        super().enqueue_req(conn)

    def finish_request(self, conn, fs):
        # Runs on the main thread; its loop then calls set_accept_enabled(True), which accepts again.
        self.in_flight -= 1
        super().finish_request(conn, fs)

    def set_accept_enabled(self, enabled):
        super().set_accept_enabled(enabled and not self.saturated())

    def accept(self, listener):
        # The poller may report the listener in the same round that filled the last thread.
        if not self.saturated():
            super().accept(listener)
