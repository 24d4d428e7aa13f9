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


def test_the_blueprints_the_limiter_skips_declare_no_limit(make_app, app_config):
    """The limiter skips its per-request work for UNLIMITED_BLUEPRINTS; a limit declared on one of their views
    would silently never apply, so none may be."""
    from flask_limiter.util import get_qualified_name

    from extensions import UNLIMITED_BLUEPRINTS, limiter

    app = make_app({**app_config, "RATELIMIT_ENABLED": True})
    skipped = [endpoint for endpoint in app.view_functions if endpoint.split(".")[0] in UNLIMITED_BLUEPRINTS]
    assert skipped, "the hot-path blueprints are registered"
    marked = {name for name in limiter._marked_for_limiting}
    assert not [e for e in skipped if get_qualified_name(app.view_functions[e]) in marked
                or limiter.limit_manager.has_hints(e)]
    assert not [bp for bp in UNLIMITED_BLUEPRINTS if limiter.limit_manager._blueprint_limits.get(bp)]
    # and a limited form next to them is still limited
    assert any(get_qualified_name(view) in marked for endpoint, view in app.view_functions.items()
               if endpoint.split(".")[0] not in UNLIMITED_BLUEPRINTS)


def test_a_default_limit_an_operator_configures_still_applies_before_requests(make_app, app_config, monkeypatch):
    """The limiter's before-request check is skipped while nothing is declared for it to find; a default limit
    (COURSEGATE_RATELIMIT_DEFAULT) is found, and applied, except to the carts' webhooks and access checks."""
    from extensions import limiter

    # The limiter is the process's: put its defaults back afterwards, for the tests that follow.
    monkeypatch.setattr(limiter.limit_manager, "_default_limits", list(limiter.limit_manager._default_limits))
    assert not limiter._limits_before_requests()
    app = make_app({**app_config, "RATELIMIT_ENABLED": True, "RATELIMIT_DEFAULT": "2 per hour"})
    client = app.test_client()
    assert [client.get("/api/v1/openapi.json").status_code for _ in range(3)] == [200, 200, 429]
    assert [client.get("/api/v1/access").status_code for _ in range(3)] == [401, 401, 401]  # no key, never 429
