"""The periodic jobs of schedule.py run by `celery -A worker beat` (production) or `flask --app app jobs run-due`
(cron), as docs/deploy.md says."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

import jobs
import schedule
import timeutil
from emails.models import OutboundEmail
from membership import services
from tests import factories
from tests.production.conftest import REDIS_DB, REDIS_HOST, REDIS_PORT
from tests.production.processes import run_cli, service_env, start_celery_beat, stop, wait_until

pytestmark = pytest.mark.postgres


def beat_state_all_due(app, path) -> None:
    """A beat state file (`--schedule`) in which every job of schedule.py last ran a day ago, so a freshly started
    beat sends each one at once instead of after its interval."""
    from celery.beat import PersistentScheduler

    scheduler = PersistentScheduler(app=app.extensions["celery"], schedule_filename=str(path), lazy=True)
    scheduler.setup_schedule()
    for entry in scheduler.schedule.values():
        entry.last_run_at = timeutil.now() - timedelta(days=1)
    scheduler.close()


def test_celery_beat_sends_every_periodic_job_of_schedule_py(app, database_url, redis_url, tmp_path):
    import redis

    state = tmp_path / "celerybeat-schedule"
    beat_state_all_due(app, state)
    env = service_env(DATABASE_URL=database_url, CELERY_BROKER_URL=redis_url)
    beat = start_celery_beat(env, state, log=tmp_path / "beat.log")
    queue = redis.Redis(REDIS_HOST, REDIS_PORT, db=REDIS_DB)

    def sent_tasks() -> set[str]:
        return {json.loads(raw)["headers"]["task"] for raw in queue.lrange("celery", 0, -1)}

    expected = {job.load().name for job in schedule.PERIODIC_JOBS}
    try:
        wait_until(lambda: sent_tasks() >= expected, timeout=45, proc=beat,
                   what=f"beat to send {sorted(expected)} (see {tmp_path / 'beat.log'})")
    finally:
        stop(beat)
        queue.close()


def test_jobs_run_due_is_the_cron_alternative(app, session, database_url, smtp_sink, monkeypatch):
    with monkeypatch.context() as lost_triggers:  # an email whose delivery job was lost: the sweep sends it
        lost_triggers.setattr(jobs, "dispatch", lambda task, *args: None)
        services.queue_welcome_email(session, factories.make_member(email="cron@example.com"), [])
        session.commit()
    env = service_env(DATABASE_URL=database_url, MAIL_SERVER="127.0.0.1", MAIL_PORT=str(smtp_sink.port))

    first = run_cli(env, "jobs", "run-due").stdout
    again = run_cli(env, "jobs", "run-due").stdout

    assert first.startswith(f"Ran {len(schedule.PERIODIC_JOBS)} due job(s): ") and "emails.sweep" in first
    assert again.strip() == "Ran 0 due job(s)."  # nothing is due again within its interval
    assert [str(m["To"]) for m in smtp_sink.wait_for(1)] == ["cron@example.com"]
    session.rollback()
    assert session.scalar(select(OutboundEmail.status)) == "sent"
