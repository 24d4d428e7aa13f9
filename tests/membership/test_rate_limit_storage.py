"""With the rate limits' storage (Redis) unreachable, the sign-in forms keep working on in-memory limits and
the outage is logged."""

from __future__ import annotations

import logging

from tests.conftest import free_port
from tests.helpers import csrf_token


def test_login_keeps_working_and_limited_when_redis_is_gone(make_app, app_config, caplog):
    gone = f"redis://127.0.0.1:{free_port()}/3"  # nothing listens there
    app = make_app({**app_config, "RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": gone,
                    "LOGIN_RATE_LIMIT_EMAIL": "3 per hour", "LOGIN_RATE_LIMIT_IP": "100 per hour"})
    client = app.test_client()
    token = csrf_token(client)
    with caplog.at_level(logging.WARNING):
        codes = [client.post("/login", data={"email": "ada@example.com", "csrf_token": token}).status_code
                 for _ in range(4)]
    assert codes == [200, 200, 200, 429]  # counted in memory meanwhile: still limited, never a 500
    assert any("falling back to in-memory" in record.getMessage() for record in caplog.records)
