"""Admin sign-in: a ``next`` is followed only to a path on this site; anything else goes to the dashboard."""

from __future__ import annotations

import pytest

from tests.admin.conftest import OWNER_EMAIL, OWNER_PASSWORD

OFF_SITE = ["https://evil.example/", "//evil.example", "/\t/evil.example", "/\n/evil.example", "/\\evil.example",
            " //evil.example", "evil.example", "javascript:alert(1)"]


@pytest.mark.parametrize("target", OFF_SITE + ["/admin\r\nX-Injected: 1", "/login", "/administrators"])
def test_admin_sign_in_goes_to_the_dashboard_for_anything_but_an_admin_path(anonymous, owner, target):
    response = anonymous.client.post("/admin/login", query_string={"next": target},
                                     data={"csrf_token": anonymous.token, "email": OWNER_EMAIL,
                                           "password": OWNER_PASSWORD})
    assert response.status_code == 302 and response.location == "/admin/"
    assert "X-Injected" not in response.headers
    # Signed in already: the sign-in page itself follows ``next`` the same way.
    again = anonymous.client.get("/admin/login", query_string={"next": target})
    assert again.status_code == 302 and again.location == "/admin/"


def test_admin_sign_in_follows_an_admin_path_with_its_query(anonymous, owner):
    response = anonymous.client.post("/admin/login", query_string={"next": "/admin/members?q=ada"},
                                     data={"csrf_token": anonymous.token, "email": OWNER_EMAIL,
                                           "password": OWNER_PASSWORD})
    assert response.location == "/admin/members?q=ada"
