"""Owner sessions end on sign-out, on a new password and on "sign out everywhere", for every copy of the cookie."""

from __future__ import annotations

from admin.models import Owner
from extensions import db
from tests.admin.conftest import OWNER_EMAIL, AdminClient


def copy_of(app, admin: AdminClient):
    other = app.test_client()
    other.set_cookie("session", admin.client.get_cookie("session").value)
    return other


def opens_the_admin(client) -> bool:
    response = client.get("/admin/members")
    assert response.status_code in (200, 302)
    return response.status_code == 200


def another_browser(app) -> AdminClient:
    browser = AdminClient(app.test_client())
    assert browser.sign_in().status_code == 302
    return browser


def test_signing_out_ends_every_copy_of_the_session(app, admin):
    saved = copy_of(app, admin)
    assert opens_the_admin(saved)
    assert admin.post("/admin/logout").status_code == 302
    assert not opens_the_admin(admin.client)
    assert not opens_the_admin(saved)


def test_a_new_password_from_the_cli_ends_every_session(app, admin, runner):
    saved, elsewhere = copy_of(app, admin), another_browser(app)
    result = runner.invoke(args=["owners", "set-password", OWNER_EMAIL, "--password", "a brand new password"])
    assert result.exit_code == 0, result.output
    assert not opens_the_admin(admin.client) and not opens_the_admin(saved)
    assert not opens_the_admin(elsewhere.client)
    assert AdminClient(app.test_client()).sign_in(password="a brand new password").status_code == 302


def test_sign_out_everywhere_from_the_account_page(app, admin):
    elsewhere = another_browser(app)
    saved = copy_of(app, elsewhere)
    page = admin.get("/admin/account")
    assert page.status_code == 200 and "Sign out everywhere" in page.text
    response = admin.post("/admin/account/sign-out-everywhere")
    assert response.status_code == 302 and response.location == "/admin/login"
    assert not any(opens_the_admin(c) for c in (admin.client, elsewhere.client, saved))
    assert opens_the_admin(another_browser(app).client)  # signing in again works as before


def test_sign_out_everywhere_needs_the_csrf_token(app, admin):
    assert admin.post("/admin/account/sign-out-everywhere", csrf=False).status_code == 400
    assert opens_the_admin(admin.client)


def test_sign_out_everywhere_from_the_cli(app, admin, runner):
    result = runner.invoke(args=["owners", "sign-out", OWNER_EMAIL])
    assert result.exit_code == 0 and "signed out everywhere" in result.output
    assert not opens_the_admin(admin.client)
    with app.app_context():
        assert db.session.query(Owner).one().session_generation == 1  # each sign-in before it now ended
    assert runner.invoke(args=["owners", "sign-out", "nobody@example.com"]).exit_code != 0
