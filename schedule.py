"""Periodic jobs, declared as data in one list (as Redash does).

Each entry names a Celery task (``"module:attribute"`` of a ``shared_task``) and how often it runs.
The same list feeds two runners:

- Celery beat (``celery -A worker beat``): :func:`beat_schedule` becomes ``beat_schedule`` in jobs.py;
- cron, for installs without Celery: ``flask --app app jobs run-due`` every minute runs each job whose
  interval has passed since its last run, once (last runs are kept in ``periodic_job_runs``).

Add a job by adding a line to ``PERIODIC_JOBS``.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import click
from celery import Task
from flask.cli import AppGroup
from sqlalchemy import String, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

import timeutil
from extensions import db

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeriodicJob:
    name: str
    task: str  # "package.module:task_attribute"
    every: timedelta

    def load(self) -> Task:
        module, _, attribute = self.task.partition(":")
        return getattr(importlib.import_module(module), attribute)


PERIODIC_JOBS: list[PeriodicJob] = [
    PeriodicJob("emails.sweep", "emails.tasks:sweep", timedelta(minutes=1)),
    PeriodicJob("membership.prune_login_links", "membership.tasks:prune_login_links", timedelta(days=1)),
    PeriodicJob("automations.sweep_webhooks", "automations.tasks:sweep_webhooks", timedelta(minutes=1)),
    # Grants whose scheduled revocation (cancel at period end, grace run out) has come.
    PeriodicJob("automations.run_due", "automations.tasks:run_due", timedelta(minutes=5)),
    # Our own subscriptions: issue invoices ahead, charge what is due, retry, expire (billing/lifecycle.py).
    PeriodicJob("billing.tick", "billing.tasks:tick", timedelta(minutes=5)),
    # Charges whose outcome we never heard (timeout) or the gateway had not settled (processing).
    PeriodicJob("billing.settle_payments", "billing.tasks:settle_payments", timedelta(minutes=10)),
]

# Modules a Celery worker imports so every task is registered (periodic or triggered after a commit).
TASK_MODULES = ["emails.tasks", "membership.tasks", "keap.tasks", "automations.tasks", "billing.tasks"]


def beat_schedule() -> dict:
    return {job.name: {"task": job.load().name, "schedule": job.every.total_seconds()} for job in PERIODIC_JOBS}


class JobRun(db.Model):
    """When each periodic job last ran (for ``jobs run-due``)."""

    __tablename__ = "periodic_job_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    last_started_at: Mapped[datetime]
    last_finished_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(1000))


def _claim(job: PeriodicJob, moment: datetime) -> bool:
    """Mark ``job`` as started now if it is due; commits so two cron runs do not both take it."""
    session = db.session
    run = session.scalar(select(JobRun).where(JobRun.name == job.name).with_for_update())
    if run is None:
        try:
            with session.begin_nested():
                session.add(JobRun(name=job.name, last_started_at=moment))
                session.flush()
        except IntegrityError:
            session.rollback()
            return False
    elif moment - run.last_started_at < job.every:
        session.rollback()
        return False
    else:
        run.last_started_at = moment
    session.commit()
    return True


def run_due(jobs: list[PeriodicJob] | None = None) -> list[str]:
    """Run every due job once, in order. Returns the names of the jobs that ran."""
    ran = []
    for job in PERIODIC_JOBS if jobs is None else jobs:
        if not _claim(job, timeutil.now()):
            continue
        error = None
        try:
            job.load().run()
        except Exception as exc:  # one failing job must not stop the others; it is recorded and logged
            logger.exception("periodic job %s failed", job.name)
            db.session.rollback()
            error = f"{type(exc).__name__}: {exc}"[:1000]
        run = db.session.scalar(select(JobRun).where(JobRun.name == job.name))
        run.last_finished_at = timeutil.now()
        run.last_error = error
        db.session.commit()
        ran.append(job.name)
    return ran


def job_for_task(task_name: str) -> PeriodicJob | None:
    """The periodic job a Celery task runs (beat sends it by task name)."""
    for job in PERIODIC_JOBS:
        if job.load().name == task_name:
            return job
    return None


def note_run(job: PeriodicJob, started_at: datetime, error: str | None) -> None:
    """Record a run that beat triggered, so ``jobs list`` shows it as it shows cron's. Commits."""
    session = db.session
    session.rollback()  # a failed task may have left the session mid-transaction
    run = session.scalar(select(JobRun).where(JobRun.name == job.name).with_for_update())
    if run is None:
        run = JobRun(name=job.name, last_started_at=started_at)
        try:
            with session.begin_nested():
                session.add(run)
                session.flush()
        except IntegrityError:  # another worker recorded the same job a moment ago
            session.rollback()
            run = session.scalar(select(JobRun).where(JobRun.name == job.name).with_for_update())
    run.last_started_at = max(timeutil.as_utc(run.last_started_at), started_at)
    run.last_finished_at = timeutil.now()
    run.last_error = error[:1000] if error else None
    session.commit()


jobs_cli = AppGroup("jobs", help="Periodic jobs (for cron, when Celery beat is not used).")


@jobs_cli.command("run-due")
def run_due_command() -> None:
    """Run each periodic job whose interval has passed (run this every minute from cron)."""
    ran = run_due()
    click.echo(f"Ran {len(ran)} due job(s){': ' + ', '.join(ran) if ran else '.'}")


@jobs_cli.command("list")
def list_command() -> None:
    runs = {run.name: run for run in db.session.scalars(select(JobRun))}
    for job in PERIODIC_JOBS:
        run = runs.get(job.name)
        last = run.last_started_at.isoformat() if run else "never"
        click.echo(f"{job.name}\tevery {int(job.every.total_seconds())}s\tlast run {last}")
