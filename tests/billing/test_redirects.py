"""Cancelling a subscription: ``next`` is followed only to a path on this site, else to /subscriptions."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import timeutil
from tests.admin.test_redirects import OFF_SITE
from tests.billing.helpers import make_plan, sign_up


@pytest.fixture
def mandate(client, app_ctx):
    with timeutil.frozen(datetime(2026, 1, 10, 12, 0, tzinfo=UTC)):
        plan = make_plan()
        mandate = sign_up(client, plan.id, "ada@example.com")
    with client.session_transaction() as browser:
        browser["member_id"] = mandate.member_id
    return mandate


@pytest.mark.parametrize("target", OFF_SITE)
def test_cancelling_a_subscription_never_leaves_the_site(client, mandate, target):
    response = client.post(f"/subscriptions/{mandate.id}/cancel", data={"next": target})
    assert response.status_code == 302 and response.location == "/subscriptions"


def test_cancelling_a_subscription_goes_back_to_the_page_it_came_from(client, mandate):
    response = client.post(f"/subscriptions/{mandate.id}/cancel", data={"next": "/account"})
    assert response.status_code == 302 and response.location == "/account"
