"""Background work: the database row is the record, a job is only the trigger.

Services call :func:`after_commit` with a Celery task's name (or the task) and its ids: by name, so a
service never imports its own tasks module (which imports the service). Nothing runs until the session
commits; a rollback drops the trigger with the rows it would have acted on. Then:

- with ``CELERY_BROKER_URL`` set, the task is sent to the broker;
- inside a request on the embedded default, it runs in this process once the response is sent (a job given to
  :func:`dispatch_apart` runs then on this process's background thread instead, off the request's own);
- anywhere else (CLI, tests, jobs), it runs right away.

If a trigger is lost (crash, broker outage), the periodic sweeps find the row still pending.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from typing import Any

from celery import Celery, Task, signals
from flask import Flask, current_app, g, has_request_context
from sqlalchemy import event
from sqlalchemy.orm import Session

import observability
import schedule
import timeutil

logger = logging.getLogger(__name__)

_PENDING_KEY = "coursegate_after_commit"


def celery_init_app(app: Flask) -> Celery:
    """Flask's documented Celery pattern: tasks run inside an app context."""

    class FlaskTask(Task):
        def __call__(self, *args: object, **kwargs: object) -> object:
            request_id = getattr(self.request, "request_id", None) or (
                (getattr(self.request, "headers", None) or {}).get("request_id"))
            token = observability.request_id_var.set(request_id)
            try:
                with app.app_context():
                    job = schedule.job_for_task(self.name)
                    if job is None:
                        return _run_logged(self, args, kwargs)
                    return _run_periodic(job, self, args, kwargs)
            finally:
                observability.request_id_var.reset(token)

    broker = app.config.get("CELERY_BROKER_URL")
    celery_app = Celery(app.name, task_cls=FlaskTask)
    celery_app.conf.update(
        broker_url=broker or "memory://",
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,  # a worker that dies mid-task leaves the message for another
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        timezone="UTC",
        worker_hijack_root_logger=False,  # keep our dictConfig: one JSON line per job in workers and beat
    )
    celery_app.conf.update(
        imports=schedule.TASK_MODULES,  # a worker registers every task, not only those imported by chance
        beat_schedule=schedule.beat_schedule(),  # `celery -A worker beat`: the periodic jobs, declared in schedule.py
    )
    # Celery would replace our logging setup with its plain-text one in workers and beat.
    signals.setup_logging.connect(_keep_our_logging, weak=False)
    signals.worker_init.connect(_export_worker_metrics, weak=False)
    signals.worker_process_shutdown.connect(_forget_worker_process, weak=False)
    celery_app.conf.update(app.config.get("CELERY", {}))
    celery_app.set_default()
    app.extensions["celery"] = celery_app
    return celery_app


def _run_logged(task: Task, args: tuple, kwargs: dict | None = None) -> object:
    started = time.perf_counter()
    # Ids only: a job's other arguments (an email address, say) never reach the logs.
    flat = [v for a in args for v in (a if isinstance(a, (list, tuple)) else [a])]
    ids = {"ids": [a for a in flat if isinstance(a, int) and not isinstance(a, bool)]}
    try:
        result = task.run(*args, **(kwargs or {}))
    except Exception:
        observability.log_job(task.name, started, "error", **ids)
        raise
    observability.log_job(task.name, started, "ok", **ids)
    return result


def _keep_our_logging(**_kwargs) -> None:
    """Connected to Celery's ``setup_logging``: the dictConfig of app.configure_logging stays in charge."""


def _export_worker_metrics(**_kwargs) -> None:
    observability.start_worker_exporter()


def _forget_worker_process(pid: int | None = None, **_kwargs) -> None:
    observability.mark_process_dead(pid)


def _run_periodic(job, task: Task, args: tuple, kwargs: dict | None) -> object:
    """A periodic job sent by beat: its run is recorded as cron's are (``flask jobs list``)."""
    started_at, error = timeutil.now(), None
    try:
        return _run_logged(task, args, kwargs)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        schedule.note_run(job, started_at, error)


def after_commit(session: Session, task: Task | str, *args: Any) -> None:
    """Run ``task(*args)`` once ``session`` commits. ``task`` is a Celery task or its registered name."""
    session.info.setdefault(_PENDING_KEY, []).append((task, args))


@event.listens_for(Session, "after_commit")
def _dispatch_after_commit(session: Session) -> None:
    # SQLAlchemy fires after_commit (and after_rollback) for SAVEPOINTs too; only the real commit counts.
    if session.in_nested_transaction():
        return
    pending = session.info.pop(_PENDING_KEY, None)
    for task, args in pending or ():
        dispatch(task, *args)


@event.listens_for(Session, "after_rollback")
def _drop_on_rollback(session: Session) -> None:
    if session.in_nested_transaction():
        return
    session.info.pop(_PENDING_KEY, None)


def dispatch(task: Task | str, *args: Any, apart: bool = False) -> None:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    if isinstance(task, str):
        task = app.extensions["celery"].tasks[task]
    if app.config.get("CELERY_BROKER_URL"):
        try:
            task.apply_async(args=args, headers={"request_id": observability.request_id_var.get()})
        except Exception:  # the broker is down: the sweep will re-trigger from the row
            observability.BROKER_SEND_FAILURES.inc()
            logger.exception("could not send %s%r to the broker; left for the sweep", task.name, args)
        return
    if has_request_context() and not app.config.get("COURSEGATE_JOBS_INLINE"):
        deferred = g.setdefault("coursegate_deferred_jobs", [])
        deferred.append((task, args, apart))
        return
    run_now(app, task, *args)


def dispatch_apart(task: Task, *args: Any) -> None:
    """:func:`dispatch` for a job whose cost must not show in when this worker answers its next request.

    On the embedded default a job deferred past the response still runs on the request's thread, so the
    worker's next request waits for it: after ``POST /login`` that wait would tell a member's email (a login
    email made and sent) from anyone else's (a lookup). Such a job is handed, after the response, to this
    process's background thread; the request's own path then does the same for every email."""
    dispatch(task, *args, apart=True)


class _Background:
    """One thread per process running the jobs given to :func:`dispatch_apart`, in order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._queue: queue.Queue = queue.Queue()

    def put(self, app: Flask, task: Task, args: tuple, request_id: str | None) -> None:
        with self._lock:
            if self._pid != os.getpid():  # first use, or a forked worker: the parent's thread is not here
                self._pid, self._queue = os.getpid(), queue.Queue()
                threading.Thread(target=self._run, args=(self._queue,), name="coursegate-jobs", daemon=True).start()
            self._queue.put((app, task, args, request_id))

    @staticmethod
    def _run(jobs: queue.Queue) -> None:
        while True:
            app, task, args, request_id = jobs.get()
            token = observability.request_id_var.set(request_id)
            try:
                run_now(app, task, *args)
            finally:
                observability.request_id_var.reset(token)
                jobs.task_done()

    def drain(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.005)
        return not self._queue.unfinished_tasks


_background = _Background()


def drain(timeout: float = 10.0) -> bool:
    """Wait until the background thread has run every job handed to it (tests, benchmarks, shutdown)."""
    return _background.drain(timeout)


def run_now(app: Flask, task: Task, *args: Any) -> None:
    """Run a job in this process (the embedded default), keeping the request id of what triggered it."""
    try:
        with app.app_context():
            _run_logged(task, args)
    except Exception:
        logger.exception("job %s%r failed; the row stays pending for the sweep", task.name, args)


def init_app(app: Flask) -> None:
    celery_init_app(app)

    @app.after_request
    def _run_deferred_after_response(response):
        deferred = g.pop("coursegate_deferred_jobs", None)
        if deferred:
            flask_app = current_app._get_current_object()  # type: ignore[attr-defined]
            request_id = observability.request_id_var.get()

            def run_all() -> None:
                token = observability.request_id_var.set(request_id)
                try:
                    for task, args, apart in deferred:
                        if apart:
                            _background.put(flask_app, task, args, request_id)
                        else:
                            run_now(flask_app, task, *args)
                finally:
                    observability.request_id_var.reset(token)

            response.call_on_close(run_all)
        return response
