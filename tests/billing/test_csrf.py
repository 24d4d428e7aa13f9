"""The sign-up, invoice and sandbox forms refuse posts without the page's CSRF token."""

from __future__ import annotations

import re

import pytest

from tests.billing.helpers import make_plan, path_of


@pytest.fixture
def app_config(app_config):
    return {**app_config, "WTF_CSRF_ENABLED": True}


def csrf_token(page: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_sign_up_needs_the_forms_csrf_token(client, app_ctx):
    plan = make_plan()
    refused = client.post(f"/plans/{plan.id}", data={"email": "ada@example.com", "agree": "yes"})
    assert refused.status_code == 400

    token = csrf_token(client.get(f"/plans/{plan.id}").get_data(as_text=True))
    response = client.post(f"/plans/{plan.id}", data={"email": "ada@example.com", "agree": "yes",
                                                      "csrf_token": token})
    assert response.status_code == 302
    checkout = path_of(response.headers["Location"])
    assert client.post(checkout, data={"cardnumber": "4242424242424242", "exp": "12/34",
                                       "cvc": "123"}).status_code == 400
    token = csrf_token(client.get(checkout).get_data(as_text=True))
    response = client.post(checkout, data={"cardnumber": "4242424242424242", "exp": "12/34", "cvc": "123",
                                           "csrf_token": token})
    assert response.status_code == 302 and "sandbox_result=" in response.headers["Location"]
