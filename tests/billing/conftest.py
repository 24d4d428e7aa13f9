"""Billing fixtures: forms without CSRF tokens (one module tests CSRF on its own), a level and a plan."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import timeutil
from tests.billing.helpers import make_plan, sign_up


@pytest.fixture
def app_config(app_config):
    return {**app_config, "WTF_CSRF_ENABLED": False}


@pytest.fixture
def mandate(client, app_ctx):
    """A member signed up for a plan (on 2026-01-10) and signed in to the member pages."""
    with timeutil.frozen(datetime(2026, 1, 10, 12, 0, tzinfo=UTC)):
        plan = make_plan()
        mandate = sign_up(client, plan.id, "ada@example.com")
    with client.session_transaction() as browser:
        browser["member_id"] = mandate.member_id
    return mandate
