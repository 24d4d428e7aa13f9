"""Cancelling a subscription: ``next`` is followed only to a path on this site, else to /subscriptions."""

from __future__ import annotations

import pytest

from tests.admin.test_redirects import OFF_SITE


@pytest.mark.parametrize("target", OFF_SITE)
def test_cancelling_a_subscription_never_leaves_the_site(client, mandate, target):
    response = client.post(f"/subscriptions/{mandate.id}/cancel", data={"next": target})
    assert response.status_code == 302 and response.location == "/subscriptions"


def test_cancelling_a_subscription_goes_back_to_the_page_it_came_from(client, mandate):
    response = client.post(f"/subscriptions/{mandate.id}/cancel", data={"next": "/account"})
    assert response.status_code == 302 and response.location == "/account"
