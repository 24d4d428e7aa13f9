"""Flask-Limiter counts in Redis when configured, so the /login limit holds across app processes."""

from __future__ import annotations

import re

import pytest
import requests

from tests.production.processes import service_env, start_gunicorns, stop

pytestmark = pytest.mark.postgres


def test_two_app_processes_share_the_login_limit(app, database_url, redis_url, tmp_path):
    env = service_env(DATABASE_URL=database_url, COURSEGATE_RATELIMIT_STORAGE_URI=redis_url,
                      COURSEGATE_LOGIN_RATE_LIMIT_EMAIL="3 per hour", COURSEGATE_MAIL_DIR=str(tmp_path / "mail"))
    # One worker each: with per-process memory counters, each process would allow three on its own.
    started = start_gunicorns(env, 2, workers=1, log_dir=tmp_path)
    try:
        (a, _), (b, _) = started
        browser = requests.Session()  # one visitor; the signed session cookie is valid on both processes
        page = browser.get(f"{a}/login", timeout=10)
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text).group(1)
        codes = [browser.post(f"{base}/login", data={"email": "Limited@Example.com", "csrf_token": token},
                              timeout=10).status_code
                 for base in (a, b, a, b, a)]
    finally:
        for _, proc in started:
            stop(proc)
    assert codes == [200, 200, 200, 429, 429], codes
