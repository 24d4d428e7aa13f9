"""Owner sign-in: session, CSRF, lockout, and the owners CLI."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.admin.conftest import OWNER_EMAIL, OWNER_PASSWORD, AdminClient

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
    assert response.headers["X-Content-Type-Options"] == "nosniff" and response.headers["X-Frame-Options"] == "DENY"


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


HERE, ELSEWHERE = "198.51.100.1", "203.0.113.9"


def sign_in_from(admin_client, address: str, email: str = OWNER_EMAIL, password: str = OWNER_PASSWORD):
    return admin_client.client.post("/admin/login", data={"csrf_token": admin_client.token, "email": email,
                                                          "password": password},
                                    environ_base={"REMOTE_ADDR": address})


def test_wrong_passwords_pause_that_client_only_and_the_owner_gets_in_from_elsewhere(app, owner):
    guesser = AdminClient(app.test_client())
    for _ in range(4):
        assert sign_in_from(guesser, HERE, password="guess").status_code == 401
    paused = sign_in_from(guesser, HERE, password="guess")
    assert paused.status_code == 429
    assert "locked for 15 minutes" in paused.text and "owners set-password" in paused.text
    assert 840 <= int(paused.headers["Retry-After"]) <= 900
    assert sign_in_from(guesser, HERE).status_code == 429  # the right password, from the paused client

    # Someone who knows the owner's email cannot lock the owner out: from the owner's own address, it works.
    the_owner = AdminClient(app.test_client())
    assert sign_in_from(the_owner, ELSEWHERE).status_code == 302
    assert the_owner.get("/admin/").status_code == 200


def test_unknown_emails_are_paused_alike(anonymous, owner):
    answers = [sign_in_from(anonymous, HERE, email="nobody@example.com").status_code for _ in range(5)]
    assert answers == [401, 401, 401, 401, 429]


def test_setting_a_password_lifts_the_pause(app, anonymous, owner, runner):
    for _ in range(5):
        sign_in_from(anonymous, HERE, password="guess")
    assert sign_in_from(anonymous, HERE).status_code == 429
    result = runner.invoke(args=["owners", "set-password", OWNER_EMAIL, "--password", "a brand new password"])
    assert result.exit_code == 0, result.output
    assert sign_in_from(anonymous, HERE, password="a brand new password").status_code == 302


def test_the_pause_ends_with_its_window(make_app, app_config, owner):
    import time

    client = AdminClient(make_app({**app_config, "ADMIN_LOGIN_FAILURES": "2 per 1 second"}).test_client())
    assert [sign_in_from(client, HERE, password="guess").status_code for _ in range(2)] == [401, 429]
    time.sleep(1.1)
    assert sign_in_from(client, HERE).status_code == 302


def test_a_successful_sign_in_resets_the_failure_count(anonymous, owner):
    for _ in range(4):
        anonymous.sign_in(password="guess")
    assert anonymous.sign_in().status_code == 302
    anonymous.post("/admin/logout")
    for _ in range(4):
        assert anonymous.sign_in(password="guess").status_code == 401


def test_admin_sign_in_is_rate_limited_per_address(make_app, app_config, owner):
    app = make_app({**app_config, "RATELIMIT_ENABLED": True, "ADMIN_LOGIN_RATE_LIMIT_IP": "3 per minute"})
    here = AdminClient(app.test_client())
    answers = [sign_in_from(here, HERE, email=f"nobody{n}@example.com").status_code for n in range(4)]
    assert answers == [401, 401, 401, 429]
    assert "Too many sign-in attempts" in sign_in_from(here, HERE).text
    assert sign_in_from(AdminClient(app.test_client()), ELSEWHERE).status_code == 302


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


def test_owner_sign_in_works_while_the_rate_limit_storage_is_down(make_app, app_config, owner, caplog):
    from tests.conftest import free_port

    gone = f"redis://127.0.0.1:{free_port()}/3"  # nothing listens there
    app = make_app({**app_config, "RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": gone})
    client = AdminClient(app.test_client())
    assert sign_in_from(client, HERE, password="guess").status_code == 401
    assert sign_in_from(client, HERE).status_code == 302
    assert any("counting owner sign-in failures in memory" in r.getMessage() for r in caplog.records)
