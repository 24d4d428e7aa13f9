"""Fixtures for the admin pages: an owner account and a test client signed in as that owner."""

from __future__ import annotations

import re

import pytest

OWNER_EMAIL = "owner@example.com"
OWNER_PASSWORD = "correct horse battery"

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_from(html: str) -> str:
    match = _CSRF.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


@pytest.fixture
def owner(app):
    from admin import auth
    from extensions import db

    with app.app_context():
        row = auth.create_owner(db.session, OWNER_EMAIL, OWNER_PASSWORD)
        db.session.commit()
        return row.id


class AdminClient:
    """The test client signed in as the owner; ``post`` adds the session's CSRF token unless told not to."""

    def __init__(self, client):
        self.client = client
        self.token = csrf_from(client.get("/admin/login").text)

    def sign_in(self, email: str = OWNER_EMAIL, password: str = OWNER_PASSWORD):
        return self.client.post("/admin/login", data={"csrf_token": self.token, "email": email, "password": password})

    def get(self, path: str, **kwargs):
        return self.client.get(path, **kwargs)

    def post(self, path: str, data: dict | None = None, *, csrf: bool = True, **kwargs):
        body = dict(data or {})
        if csrf:
            body.setdefault("csrf_token", self.token)
        return self.client.post(path, data=body, **kwargs)


@pytest.fixture
def anonymous(client):
    return AdminClient(client)


@pytest.fixture
def admin(client, owner):
    signed_in = AdminClient(client)
    response = signed_in.sign_in()
    assert response.status_code == 302, response.text
    return signed_in
