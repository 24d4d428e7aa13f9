"""gunicorn.conf.py refuses to start several workers that would each count rate limits on their own."""

from __future__ import annotations

import subprocess

import pytest

from config import per_process_limits_problem
from tests.conftest import ROOT, free_port
from tests.production.processes import gunicorn_argv, service_env, start_gunicorn, stop


def env_without_shared_limits(tmp_path, **overrides: str) -> dict[str, str]:
    env = service_env(DATABASE_URL=f"sqlite:///{tmp_path / 'start-up.sqlite3'}",
                      COURSEGATE_MAIL_DIR=str(tmp_path / "mail"))
    env.pop("COURSEGATE_RATELIMIT_PER_PROCESS")
    return {**env, **overrides}


def test_two_workers_without_shared_storage_refuse_to_start(tmp_path):
    result = subprocess.run(gunicorn_argv(free_port(), 2), cwd=ROOT, env=env_without_shared_limits(tmp_path),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "Refusing to start" in result.stderr and "COURSEGATE_RATELIMIT_STORAGE_URI" in result.stderr


def test_accepting_per_process_limits_starts_with_a_warning(tmp_path):
    log = tmp_path / "gunicorn.log"
    env = env_without_shared_limits(tmp_path, COURSEGATE_RATELIMIT_PER_PROCESS="1")
    base, proc = start_gunicorn(env, workers=2, log=log)
    stop(proc)
    assert "Rate limits are per process" in log.read_text()


@pytest.mark.parametrize("env, workers, refused", [
    ({}, 1, False),
    ({}, 2, True),
    ({"COURSEGATE_RATELIMIT_STORAGE_URI": "redis://redis.internal:6379/1"}, 4, False),
    ({"CELERY_BROKER_URL": "redis://redis.internal:6379/0"}, 4, False),
    ({"COURSEGATE_RATELIMIT_ENABLED": "false"}, 4, False),
])
def test_which_settings_share_the_limits(env, workers, refused):
    assert (per_process_limits_problem(env, workers) is not None) is refused
