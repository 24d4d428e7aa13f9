"""Member sessions end when the member signs out or changes their password, on every copy of the cookie, and
after ``MEMBER_SESSION_DAYS``."""

from __future__ import annotations

from datetime import timedelta

import pytest

import timeutil
from extensions import db
from membership import services
from membership.models import Member
from tests import factories
from tests.helpers import committed, csrf_token, follow_link, path_of


@pytest.fixture
def member_id(app):
    with committed(app):
        member_id = factories.make_member(email="ada@example.com", name="Ada").id
    return member_id


def login_path(app, member_id) -> str:
    with app.app_context():
        return path_of(services.login_url(db.session.get(Member, member_id)))


def signed_in(app, member_id):
    client = app.test_client()
    assert follow_link(client, login_path(app, member_id)).status_code == 302
    return client


def copy_of(app, client):
    """Another browser holding the same session cookie (copied, stolen, or restored from a backup)."""
    other = app.test_client()
    other.set_cookie("session", client.get_cookie("session").value)
    return other


def opens_the_account(client) -> bool:
    account, me = client.get("/account"), client.get("/api/v1/me")
    assert (account.status_code == 200) == (me.status_code == 200)
    if account.status_code != 200:
        assert account.location == "/login" and me.status_code == 401 and me.json["code"] == "not_signed_in"
    return account.status_code == 200


def test_signing_out_ends_every_copy_of_the_session(app, member_id):
    browser = signed_in(app, member_id)
    saved = copy_of(app, browser)
    assert opens_the_account(saved)
    assert browser.post("/logout", data={"csrf_token": csrf_token(browser, "/account")}).status_code == 302
    assert not opens_the_account(browser)
    assert not opens_the_account(saved)


def test_signing_out_signs_out_the_members_other_browsers_too(app, member_id):
    laptop, phone = signed_in(app, member_id), signed_in(app, member_id)
    laptop.post("/logout", data={"csrf_token": csrf_token(laptop, "/account")})
    assert not opens_the_account(phone)
    assert opens_the_account(signed_in(app, member_id))  # a new sign-in works as before


def test_a_link_followed_again_after_signing_out_does_not_sign_back_in(app, member_id):
    path = login_path(app, member_id)
    browser = app.test_client()
    assert follow_link(browser, path).status_code == 302
    browser.post("/logout", data={"csrf_token": csrf_token(browser, "/account")})
    # still inside the link's reuse window, from this browser's history
    assert follow_link(browser, path).status_code == 410
    assert not opens_the_account(browser)


def test_a_new_password_ends_other_sessions_and_keeps_this_one(app, member_id):
    browser = signed_in(app, member_id)
    saved, elsewhere = copy_of(app, browser), signed_in(app, member_id)
    response = browser.post("/account/password", data={
        "password": "correct horse battery", "confirm": "correct horse battery",
        "csrf_token": csrf_token(browser, "/account")})
    assert response.status_code == 302 and response.location == "/account"
    assert opens_the_account(browser)
    assert not opens_the_account(saved) and not opens_the_account(elsewhere)


@pytest.fixture
def app_config(app_config):
    return {**app_config, "MEMBER_SESSION_DAYS": 2}


def test_a_session_lasts_member_session_days_from_sign_in(app, member_id):
    start = timeutil.now()
    with timeutil.frozen(start) as clock:
        browser = signed_in(app, member_id)
        clock[0] = start + timedelta(days=1, hours=23)
        assert opens_the_account(browser)  # a visit does not make it last longer
        clock[0] = start + timedelta(days=2, seconds=1)
        assert not opens_the_account(browser)
