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
