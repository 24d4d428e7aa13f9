"""One-click login links: expiry, tampering, the scanner window, superseded links, key rotation."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

import timeutil
from extensions import db
from membership import login_links, services
from membership.models import LoginLink
from tests import factories
from tests.helpers import committed, follow_link, path_of


@pytest.fixture
def member_id(app):
    with committed(app):
        member_id = factories.make_member(email="ada@example.com", name="Ada").id
    return member_id


def link(app, member_id, purpose="welcome") -> str:
    with app.app_context():
        return path_of(services.login_url(db.session.get(services.Member, member_id), purpose=purpose))


def signed_in_member(client):
    with client.session_transaction() as browser:
        return browser.get("member_id")


def test_welcome_link_signs_in_and_lands_on_account(app, client, member_id):
    response = follow_link(client, link(app, member_id))
    assert response.status_code == 302 and response.location == "/account"
    assert signed_in_member(client) == member_id
    page = client.get("/account")
    assert page.status_code == 200 and "ada@example.com" in page.get_data(as_text=True)


def test_welcome_link_works_for_seven_days_then_expires(app, client, member_id):
    start = timeutil.now()
    with timeutil.frozen(start) as clock:
        path = link(app, member_id)
        clock[0] = start + timedelta(days=7, minutes=1)
        expired = follow_link(client, path)
    assert expired.status_code == 410
    body = expired.get_data(as_text=True)
    assert "has expired" in body and 'action="/login"' in body  # offers a fresh link
    assert signed_in_member(client) is None

    with timeutil.frozen(start) as clock:
        path = link(app, member_id)
        clock[0] = start + timedelta(days=6, hours=23)
        assert follow_link(client, path).status_code == 302


def test_login_page_link_works_for_one_hour(app, client, member_id):
    start = timeutil.now()
    with timeutil.frozen(start) as clock:
        fresh, stale = link(app, member_id, "login"), link(app, member_id, "login")
        clock[0] = start + timedelta(minutes=59)
        assert follow_link(client, fresh).status_code == 302
        clock[0] = start + timedelta(minutes=61)
        assert follow_link(client, stale).status_code == 410


@pytest.mark.parametrize("mangle", [
    lambda path: path[:-3] + ("AAA" if not path.endswith("AAA") else "BBB"),  # signature changed
    lambda path: path.replace(".", "x", 1),  # payload changed
    lambda path: "/login/not-a-token",
])
def test_tampered_link_gets_the_invalid_page(app, client, member_id, mangle):
    response = follow_link(client, mangle(link(app, member_id)))
    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert "does not work" in body and 'action="/login"' in body
    assert signed_in_member(client) is None


def test_link_signed_with_another_key_is_invalid(app, app_config, client, member_id, make_app):
    other = make_app({**app_config, "SECRET_KEY": "someone-elses-key"})
    with other.app_context():
        path = path_of(services.login_url(db.session.get(services.Member, member_id)))
    assert follow_link(client, path).status_code == 400


def test_opening_a_link_shows_a_sign_in_button_and_uses_nothing(app, client, member_id):
    path = link(app, member_id)
    page = client.get(path)
    assert page.status_code == 200 and signed_in_member(client) is None
    body = page.get_data(as_text=True)
    assert f'<form method="post" action="{path}">' in body and 'name="csrf_token"' in body
    assert page.headers["Referrer-Policy"] == "same-origin"  # the POST's Referer, for the CSRF check over HTTPS
    with app.app_context():
        assert db.session.scalar(select(func.count(LoginLink.id))) == 0
    assert client.get("/account").location == "/login"


def test_a_scanners_visits_never_use_up_the_link(app, member_id):
    """Mail scanners open every URL, sometimes again minutes later: only the button's POST uses the link."""
    path = link(app, member_id)
    scanner, member = app.test_client(), app.test_client()
    start = timeutil.now()
    with timeutil.frozen(start) as clock:
        assert scanner.get(path).status_code == 200
        clock[0] = start + timedelta(minutes=11)  # past the reuse window a first use would have opened
        assert scanner.get(path).status_code == 200
        response = follow_link(member, path)
    assert response.status_code == 302 and response.location == "/account"
    assert signed_in_member(member) == member_id and signed_in_member(scanner) is None


def test_the_sign_in_button_needs_the_pages_csrf_token(app, client, member_id):
    path = link(app, member_id)
    client.get(path)
    forged = client.post(path, data={"csrf_token": "forged"})
    assert forged.status_code == 400 and signed_in_member(client) is None
    with app.app_context():
        assert db.session.scalar(select(func.count(LoginLink.id))) == 0  # a refused POST used nothing either


def test_head_request_does_not_use_the_link(app, client, member_id):
    path = link(app, member_id)
    assert client.head(path).status_code == 200
    with app.app_context():
        assert db.session.scalar(select(func.count(LoginLink.id))) == 0
    assert signed_in_member(client) is None


def test_link_is_dead_after_the_window(app, client, member_id):
    path = link(app, member_id)
    start = timeutil.now()
    with timeutil.frozen(start) as clock:
        assert follow_link(app.test_client(), path).status_code == 302
        clock[0] = start + timedelta(seconds=app.config["LOGIN_LINK_REUSE_WINDOW"] + 1)
        response = follow_link(client, path)
    assert response.status_code == 410
    assert "already been used" in response.get_data(as_text=True)
    assert signed_in_member(client) is None


def test_link_is_dead_after_its_use_limit(app, member_id):
    path = link(app, member_id)
    limit = app.config["LOGIN_LINK_MAX_USES"]
    for _ in range(limit):
        assert follow_link(app.test_client(), path).status_code == 302
    assert follow_link(app.test_client(), path).status_code == 410
    with app.app_context():
        row = db.session.scalar(select(LoginLink))
        assert row.use_count == limit and row.member_id == member_id
        # Only a hash of the link's id is stored, never the token.
        assert len(row.link_hash) == 64 and row.link_hash not in path


def test_older_link_dies_once_a_newer_one_is_used(app, member_id):
    start = timeutil.now()
    with timeutil.frozen(start) as clock:
        older = link(app, member_id)
        clock[0] = start + timedelta(seconds=1)
        newer = link(app, member_id, "login")
        clock[0] = start + timedelta(seconds=2)
        assert follow_link(app.test_client(), newer).status_code == 302
        superseded = follow_link(app.test_client(), older)
    assert superseded.status_code == 410
    assert "already been used" in superseded.get_data(as_text=True)


def test_older_link_in_its_window_dies_once_a_newer_one_is_used(app, member_id):
    start = timeutil.now()
    with timeutil.frozen(start) as clock:
        older = link(app, member_id)
        assert follow_link(app.test_client(), older).status_code == 302
        clock[0] = start + timedelta(seconds=30)
        newer = link(app, member_id, "login")
        assert follow_link(app.test_client(), newer).status_code == 302
        clock[0] = start + timedelta(seconds=60)
        assert follow_link(app.test_client(), older).status_code == 410
        assert follow_link(app.test_client(), newer).status_code == 302  # the newer one keeps its window


def test_using_an_older_link_leaves_a_newer_unused_one_working(app, member_id):
    start = timeutil.now()
    with timeutil.frozen(start) as clock:
        older = link(app, member_id)
        clock[0] = start + timedelta(seconds=1)
        newer = link(app, member_id, "login")
        assert follow_link(app.test_client(), older).status_code == 302
        assert follow_link(app.test_client(), newer).status_code == 302


def test_revoking_a_members_links_kills_them(app, client, member_id):
    path = link(app, member_id)
    with committed(app) as session:
        login_links.revoke_all(session, session.get(services.Member, member_id))
    assert follow_link(client, path).status_code == 410


def test_link_of_a_deleted_member_is_invalid(app, client, member_id):
    path = link(app, member_id)
    with committed(app) as session:
        session.delete(session.get(services.Member, member_id))
    assert follow_link(client, path).status_code == 400


def test_links_survive_a_secret_key_rotation(app, app_config, member_id, make_app):
    old_key = app_config["SECRET_KEY"]
    path = link(app, member_id)
    rotated = make_app({**app_config, "SECRET_KEY": "the-new-key", "SECRET_KEY_FALLBACKS": [old_key]})
    client = rotated.test_client()
    response = follow_link(client, path)
    assert response.status_code == 302 and response.location == "/account"
    assert client.get("/account").status_code == 200
    # New links are signed with the new key: they fail where only the old key is known...
    with rotated.app_context():
        new_path = path_of(services.login_url(db.session.get(services.Member, member_id)))
    assert follow_link(app.test_client(), new_path).status_code == 400
    # ...and once the old key is dropped from the fallbacks, links signed with it stop working.
    dropped = make_app({**app_config, "SECRET_KEY": "the-new-key", "SECRET_KEY_FALLBACKS": []})
    assert follow_link(dropped.test_client(), link(app, member_id)).status_code == 400


def test_cli_prints_a_working_login_link(app, runner, client, member_id):
    result = runner.invoke(args=["members", "login-link", "ADA@example.com"])
    assert result.exit_code == 0
    assert follow_link(client, path_of(result.output.strip())).status_code == 302
    assert signed_in_member(client) == member_id
    missing = runner.invoke(args=["members", "login-link", "nobody@example.com"])
    assert missing.exit_code != 0 and "No member" in missing.output


def test_used_links_are_forgotten_once_they_have_expired_anyway(app, member_id):
    start = timeutil.now()
    with timeutil.frozen(start) as clock:
        old, recent = link(app, member_id), None
        assert follow_link(app.test_client(), old).status_code == 302
        clock[0] = start + timedelta(days=6)
        recent = link(app, member_id)
        assert follow_link(app.test_client(), recent).status_code == 302
        clock[0] = start + timedelta(days=7, seconds=1)
        with app.app_context():
            assert login_links.prune(db.session) == 1
            db.session.commit()
            assert db.session.scalar(select(func.count(LoginLink.id))) == 1
        assert follow_link(app.test_client(), old).status_code == 410  # expired: pruning changed nothing for it
        assert follow_link(app.test_client(), recent).status_code == 410  # used up its window long ago


def test_a_used_link_clicked_again_where_its_member_is_signed_in_goes_to_the_account(app, client, member_id):
    path = link(app, member_id)
    start = timeutil.now()
    with timeutil.frozen(start) as clock:
        assert follow_link(client, path).status_code == 302
        clock[0] = start + timedelta(days=1)
        again = follow_link(client, path)
        assert again.status_code == 302 and again.location == "/account"
        other = app.test_client()  # anyone else gets the "already used" page
        assert follow_link(other, path).status_code == 410
