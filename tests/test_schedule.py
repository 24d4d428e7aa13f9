"""Periodic jobs declared once: Celery beat reads the list, `flask jobs run-due` runs what is due for cron users."""

from __future__ import annotations

from datetime import timedelta

from celery import Task, shared_task
from sqlalchemy import select

import schedule
import timeutil
from config import from_environment
from emails.models import OutboundEmail
from extensions import db
from membership import services
from tests import factories
from tests.helpers import committed

calls: list[str] = []


@shared_task(name="tests.record")
def record() -> None:
    calls.append("record")


@shared_task(name="tests.boom")
def boom() -> None:
    raise RuntimeError("boom")


def test_beat_schedule_has_every_periodic_job(app):
    celery = app.extensions["celery"]
    beat = celery.conf.beat_schedule
    assert set(beat) == {job.name for job in schedule.PERIODIC_JOBS}
    assert beat["emails.sweep"] == {"task": "emails.sweep", "schedule": 60.0}
    assert "emails.tasks" in celery.conf.imports and "membership.tasks" in celery.conf.imports
    for job in schedule.PERIODIC_JOBS:
        assert job.load().name == beat[job.name]["task"]


def test_run_due_delivers_pending_email_and_runs_each_job_once_per_interval(app, runner, monkeypatch):
    from emails import transport

    start = timeutil.now()
    with timeutil.frozen(start) as clock:
        monkeypatch.setattr(transport, "send", lambda **kw: (_ for _ in ()).throw(OSError("down")))
        with committed(app) as session:
            services.queue_welcome_email(session, factories.make_member(), [])
        monkeypatch.undo()
        clock[0] = start + timedelta(minutes=2)
        result = runner.invoke(args=["jobs", "run-due"])
        assert result.exit_code == 0
        assert f"Ran {len(schedule.PERIODIC_JOBS)} due job(s): emails.sweep, " in result.output
        with app.app_context():
            assert db.session.scalar(select(OutboundEmail.status)) == "sent"
        assert "Ran 0 due job(s)" in runner.invoke(args=["jobs", "run-due"]).output
        clock[0] = start + timedelta(minutes=3, seconds=1)
        again = runner.invoke(args=["jobs", "run-due"]).output
        assert "emails.sweep" in again and "membership.prune_login_links" not in again  # daily: not due yet
        listing = runner.invoke(args=["jobs", "list"]).output
        assert "emails.sweep\tevery 60s\tlast run" in listing


def test_a_failing_job_is_recorded_and_does_not_stop_the_others(app):
    calls.clear()
    jobs = [schedule.PeriodicJob("boom", "tests.test_schedule:boom", timedelta(minutes=5)),
            schedule.PeriodicJob("record", "tests.test_schedule:record", timedelta(minutes=5))]
    with app.app_context():
        assert schedule.run_due(jobs) == ["boom", "record"]
        runs = {r.name: r for r in db.session.scalars(select(schedule.JobRun))}
    assert calls == ["record"]
    assert runs["boom"].last_error == "RuntimeError: boom" and runs["record"].last_error is None


def test_with_a_broker_delivery_is_a_celery_task_sent_after_commit(app, app_config, monkeypatch, make_app):
    sent: list = []
    monkeypatch.setattr(Task, "apply_async",
                        lambda task, args=(), **options: sent.append((task.name, tuple(args))))
    celery_app = make_app({**app_config, "CELERY_BROKER_URL": "redis://127.0.0.1:6390/0"})
    assert celery_app.extensions["celery"].conf.broker_url == "redis://127.0.0.1:6390/0"
    with celery_app.app_context():
        services.queue_welcome_email(db.session, factories.make_member(), [])
        email = db.session.scalar(select(OutboundEmail))
        assert sent == []  # nothing before the commit
        db.session.commit()
        assert sent == [("emails.deliver", (email.id,))]
        assert db.session.get(OutboundEmail, email.id).status == "pending"  # the worker sends it


def test_a_broker_outage_leaves_the_email_for_the_sweep(app, app_config, monkeypatch, make_app):
    def broker_down(task, args=(), **options):
        raise ConnectionError("redis is down")

    monkeypatch.setattr(Task, "apply_async", broker_down)
    celery_app = make_app({**app_config, "CELERY_BROKER_URL": "redis://127.0.0.1:6390/0"})
    with celery_app.app_context():
        services.queue_welcome_email(db.session, factories.make_member(), [])
        db.session.commit()  # does not raise
        assert db.session.scalar(select(OutboundEmail.status)) == "pending"
    with app.app_context():
        from emails import services as email_services

        assert email_services.sweep_pending() == 1
        assert db.session.scalar(select(OutboundEmail.status)) == "sent"


def test_rate_limit_storage_follows_the_configuration(tmp_path):
    assert from_environment(str(tmp_path), {})["RATELIMIT_STORAGE_URI"] == "memory://"
    broker = {"CELERY_BROKER_URL": "redis://cache:6379/0"}
    assert from_environment(str(tmp_path), broker)["RATELIMIT_STORAGE_URI"] == "redis://cache:6379/0"
    own = {**broker, "COURSEGATE_RATELIMIT_STORAGE_URI": "redis://cache:6379/3"}
    assert from_environment(str(tmp_path), own)["RATELIMIT_STORAGE_URI"] == "redis://cache:6379/3"
