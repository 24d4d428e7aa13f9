"""gunicorn's threaded worker, taking a connection only while it has a thread free for it.

Every worker of a gunicorn server accepts from the same listening socket, and a stock ``gthread`` worker accepts
whenever its main thread is awake: it can take far more connections than it has threads, to queue their requests
while its siblings sit idle. Carts and proxies that keep connections open stay with whichever worker won them,
so under load one worker served 13 or 14 of 16 kept-alive connections, 8 at a time, and the other 2 or 3
(bench/webhooks.py). The busy worker's requests queued behind its threads, and the idle one's group-commit batches
shrank to one or two deliveries, each paying a whole transaction.

This worker stops accepting while every one of its threads has a request: a new connection stays in the kernel's
queue for a worker with a thread free (a sibling now, or this one as soon as a request finishes), which is where
it would have waited anyway, for at most ``PATIENCE_SECONDS``; then the busy worker takes it, as a stock worker
does. Connections it already holds are served as before.

It relies on gunicorn 27's ``ThreadWorker``: ``enqueue_req`` and ``finish_request`` (a request in and out of the
thread pool), ``set_accept_enabled`` and ``_accepting`` (the listener on its poller or not), and ``murder_keepalived``
(called once a round of its loop). pyproject.toml pins that major version, and
tests/production/test_gunicorn_worker.py runs the worker under a real gunicorn.
"""

from __future__ import annotations

import time

from gunicorn.workers.gthread import ThreadWorker

# How long a worker whose threads are all busy leaves a waiting connection to its siblings before taking it anyway,
# as a stock worker would: without a bound, a worker kept busy by more kept-alive connections than it has threads
# would never take another, and neither would its siblings (a connection beyond every worker's threads would wait
# for good). Past it, a busy worker takes one connection, and waits again.
PATIENCE_SECONDS = 0.01


class BalancedThreadWorker(ThreadWorker):

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Main thread only, as all of ThreadWorker's own bookkeeping.
        self.in_flight = 0  # requests submitted to the thread pool and not finished
        self.declined_at: float | None = None  # when it last began to leave new connections to its siblings
        self.takes_connections = True  # what the last round decided

    def enqueue_req(self, conn):
        self.in_flight += 1
        super().enqueue_req(conn)

    def finish_request(self, conn, fs):
        self.in_flight -= 1
        super().finish_request(conn, fs)

    def busy(self) -> bool:
        """Every thread has a request, and the connections waiting have not yet waited out their patience."""
        if self.in_flight < self.cfg.threads:
            return False
        return self.declined_at is None or time.monotonic() - self.declined_at < PATIENCE_SECONDS

    def murder_keepalived(self, force=False):
        # ThreadWorker's loop calls this once a round, after dispatching the round's events: the place to decide
        # whether the next round takes new connections.
        super().murder_keepalived(force)
        if self.in_flight < self.cfg.threads:
            self.declined_at, self.takes_connections = None, True
        elif self._accepting or self.declined_at is None:
            # Busy, and it took connections this round (a thread was free, or the patience had run out).
            self.declined_at, self.takes_connections = time.monotonic(), False
        else:
            self.takes_connections = not self.busy()
        if self.alive and self.nr_conns < self.worker_connections:
            super().set_accept_enabled(self.takes_connections)

    def set_accept_enabled(self, enabled):
        super().set_accept_enabled(enabled and self.takes_connections)

    def accept(self, listener):
        # Within a round, kept-alive connections may have taken the last free threads before the listener's turn.
        if self._accepting and not self.busy():
            super().accept(listener)
