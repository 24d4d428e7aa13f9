"""Owner sign-in: session, CSRF, lockout, and the owners CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

import timeutil
from tests.admin.conftest import OWNER_EMAIL, OWNER_PASSWORD

ADMIN_PAGES = ["/admin/", "/admin/members", "/admin/courses", "/admin/courses/new", "/admin/levels",
               "/admin/levels/new", "/admin/integrations", "/admin/integrations/new", "/admin/emails",
               "/admin/emails/templates", "/admin/emails/templates/welcome", "/admin/api-keys"]


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_every_admin_page_sends_a_stranger_to_sign_in(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.location.startswith("/admin/login?next=")


def test_a_signed_in_member_is_not_an_owner(client, app, owner):
    with client.session_transaction() as session:
        session["member_id"] = 1
    assert client.get("/admin/").status_code == 302


@pytest.mark.parametrize("path", ADMIN_PAGES)
def test_every_admin_page_opens_for_the_owner(admin, path):
    response = admin.get(path)
    assert response.status_code == 200
    assert "no-store" in response.headers["Cache-Control"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_sign_in_goes_back_to_the_page_asked_for_then_sign_out(anonymous, owner):
    response = anonymous.client.post("/admin/login?next=/admin/members",
                                     data={"csrf_token": anonymous.token, "email": "  Owner@Example.com ",
                                           "password": OWNER_PASSWORD})
    assert response.status_code == 302 and response.location == "/admin/members"
    assert "Signed in as owner@example.com" in anonymous.get("/admin/members").text

    response = anonymous.post("/admin/logout")
    assert response.status_code == 302
    assert anonymous.get("/admin/").status_code == 302


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/admin", "/login", "/\\evil.example"])
def test_sign_in_never_redirects_off_the_admin(anonymous, owner, target):
    response = anonymous.client.post(f"/admin/login?next={target}",
                                     data={"csrf_token": anonymous.token, "email": OWNER_EMAIL,
                                           "password": OWNER_PASSWORD})
    assert response.location == "/admin/"


def test_wrong_password_and_unknown_email_get_the_same_answer(anonymous, owner):
    wrong = anonymous.sign_in(password="not the password")
    unknown = anonymous.sign_in(email="nobody@example.com")
    assert wrong.status_code == unknown.status_code == 401
    assert "That email and password do not match an owner account." in wrong.text
    assert "That email and password do not match an owner account." in unknown.text
    assert anonymous.get("/admin/").status_code == 302


def test_empty_sign_in_form_says_what_is_missing(anonymous, owner):
    response = anonymous.post("/admin/login", {"email": "", "password": ""})
    assert response.status_code == 422
    assert "This field is required." in response.text


def test_five_wrong_passwords_lock_the_account_even_against_the_right_one(anonymous, app, owner):
    start = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    with timeutil.frozen(start) as clock:
        for _ in range(4):
            assert anonymous.sign_in(password="guess").status_code == 401
        locked = anonymous.sign_in(password="guess")
        assert locked.status_code == 429
        assert "locked" in locked.text
        refused = anonymous.sign_in()  # the right password, during the lock
        assert refused.status_code == 429
        assert anonymous.get("/admin/").status_code == 302

        clock[0] = start + timedelta(minutes=16)
        assert anonymous.sign_in().status_code == 302
        assert anonymous.get("/admin/").status_code == 200

    from admin.models import Owner
    from extensions import db

    with app.app_context():
        row = db.session.get(Owner, owner)
        assert row.failed_attempts == 0 and row.locked_until is None


def test_a_successful_sign_in_resets_the_failure_count(anonymous, owner):
    for _ in range(4):
        anonymous.sign_in(password="guess")
    assert anonymous.sign_in().status_code == 302
    anonymous.post("/admin/logout")
    for _ in range(4):
        assert anonymous.sign_in(password="guess").status_code == 401


def test_sign_in_without_csrf_token_is_rejected(anonymous, owner):
    response = anonymous.post("/admin/login", {"email": OWNER_EMAIL, "password": OWNER_PASSWORD}, csrf=False)
    assert response.status_code == 400
    assert "CSRF" in response.text
    assert anonymous.get("/admin/").status_code == 302


def test_a_form_post_without_csrf_token_changes_nothing(admin, app):
    response = admin.post("/admin/courses/new", {"title": "Sneaky", "slug": "sneaky"}, csrf=False)
    assert response.status_code == 400
    response = admin.post("/admin/courses/new", {"title": "Sneaky", "slug": "sneaky", "csrf_token": "forged"},
                          csrf=False)
    assert response.status_code == 400
    assert "Sneaky" not in admin.get("/admin/courses").text


def test_owners_create_with_a_password_option(runner, app):
    result = runner.invoke(args=["owners", "create", "Boss@Example.com", "--password", "a long enough pw"])
    assert result.exit_code == 0, result.output
    assert "boss@example.com" in result.output
    from admin.models import Owner
    from extensions import db

    with app.app_context():
        row = db.session.scalar(select(Owner))
        assert row.email == "boss@example.com"
        assert row.password_hash != "a long enough pw"


def test_owners_create_prompts_for_the_password_twice(runner, app, client):
    result = runner.invoke(args=["owners", "create", "boss@example.com"], input="typed secret pw\ntyped secret pw\n")
    assert result.exit_code == 0, result.output
    from tests.admin.conftest import AdminClient

    assert AdminClient(client).sign_in("boss@example.com", "typed secret pw").status_code == 302


def test_owners_create_refuses_short_passwords_and_duplicates(runner, owner):
    short = runner.invoke(args=["owners", "create", "x@example.com", "--password", "short"])
    assert short.exit_code != 0 and "at least 10 characters" in short.output
    duplicate = runner.invoke(args=["owners", "create", OWNER_EMAIL, "--password", "another long pw"])
    assert duplicate.exit_code != 0 and "already exists" in duplicate.output
    bad = runner.invoke(args=["owners", "create", "not-an-email", "--password", "another long pw"])
    assert bad.exit_code != 0 and "not a usable email" in bad.output


def test_owners_set_password_lifts_a_lock(runner, anonymous, owner):
    for _ in range(5):
        anonymous.sign_in(password="guess")
    assert anonymous.sign_in().status_code == 429
    result = runner.invoke(args=["owners", "set-password", OWNER_EMAIL, "--password", "brand new password"])
    assert result.exit_code == 0, result.output
    assert anonymous.sign_in(password="brand new password").status_code == 302
    listing = runner.invoke(args=["owners", "list"])
    assert OWNER_EMAIL in listing.output
