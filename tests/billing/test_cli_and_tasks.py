"""``flask billing tick`` and the Celery task run the same pass; beat has it on its schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import timeutil
from billing import tasks
from tests.billing.helpers import invoices_of, make_plan, sign_up

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


def test_cli_tick_issues_and_reports(app, client, runner, app_ctx):
    with timeutil.frozen(T0) as clock:
        mandate = sign_up(client, make_plan().id, "ada@example.com")
        clock[0] = invoices_of(mandate)[0].period_end - timedelta(hours=47)
        result = runner.invoke(args=["billing", "tick"])
    assert result.exit_code == 0, result.output
    assert "issued 1, charged 0" in result.output
    assert len(invoices_of(mandate)) == 2


def test_celery_task_runs_the_tick_and_beat_schedules_it(app, client, app_ctx):
    with timeutil.frozen(T0) as clock:
        mandate = sign_up(client, make_plan().id, "ada@example.com")
        clock[0] = invoices_of(mandate)[0].period_end
        summary = tasks.tick.run()
    assert "issued 1, charged 1 (succeeded 1)" in summary
    schedule = app.extensions["celery"].conf.beat_schedule["billing.tick"]
    assert schedule["task"] == "billing.tick" and schedule["schedule"] == timedelta(minutes=5).total_seconds()
