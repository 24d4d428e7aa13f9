"""Member pages: asking for a link (no enumeration, rate limits), passwords, CSRF, sign-out, the session cookie."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import event, select
from werkzeug.security import check_password_hash

import jobs
from emails import transport
from emails.models import OutboundEmail
from extensions import db
from membership.models import Member
from tests import factories
from tests.helpers import committed, csrf_token, follow_link, login_link_in, path_of


@pytest.fixture
def member_id(app):
    with committed(app):
        member_id = factories.make_member(email="ada@example.com", name="Ada").id
    return member_id


def mail_files(app) -> list[Path]:
    return sorted(Path(app.config["COURSEGATE_MAIL_DIR"]).glob("*.eml"))


def ask_for_link(client, email: str, **kwargs):
    return client.post("/login", data={"email": email, "csrf_token": csrf_token(client)}, **kwargs)


class StatementCounter:
    """SQL statements run on this thread: the request's own work (the test client runs it here)."""

    def __init__(self, app):
        self.app, self.count, self.statements = app, 0, []
        self.thread = threading.get_ident()

    def _count(self, conn, cursor, statement, *args):
        if threading.get_ident() == self.thread:
            self.count += 1
            self.statements.append(statement.split()[0])

    def __enter__(self):
        with self.app.app_context():
            self.engine = db.engine
        event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._count)


def test_login_page_has_a_form_with_csrf(client):
    page = client.get("/login")
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'name="csrf_token"' in body and 'name="email"' in body and 'action="/login/password"' in body


def test_member_asking_for_a_link_gets_one_after_the_response(app, client, member_id):
    response = ask_for_link(client, "  ADA@example.com ")
    assert response.status_code == 200 and "Check your email" in response.get_data(as_text=True)
    assert mail_files(app) == []  # nothing happened while the member waited
    response.close()  # the response has been sent: the job runs now, on the background thread
    assert jobs.drain()
    (path,) = mail_files(app)
    content = path.read_text()
    assert "To: ada@example.com" in content and "Your login link for Test Academy" in content

    url = login_link_in(content.replace("=\n", ""))
    fresh = follow_link(client, path_of(url))
    assert fresh.status_code == 302 and fresh.location == "/account"


def test_no_account_enumeration(app, client, member_id):
    """Same status, same page, same (zero) database work in the request, whether or not the email is a member's."""
    responses, statements = [], []
    for email in ("ada@example.com", "nobody@example.com"):
        token = csrf_token(client)
        with StatementCounter(app) as counter:
            response = client.post("/login", data={"email": email, "csrf_token": token})
        statements.append(counter.count)
        responses.append(response)
    member, stranger = responses
    assert member.status_code == stranger.status_code == 200
    assert (member.get_data(as_text=True).replace("ada@example.com", "EMAIL")
            == stranger.get_data(as_text=True).replace("nobody@example.com", "EMAIL"))
    assert statements == [0, 0]
    for response in responses:
        response.close()
    assert jobs.drain()
    with app.app_context():
        assert [row.recipient for row in db.session.scalars(select(OutboundEmail))] == ["ada@example.com"]


def test_after_the_response_the_request_thread_does_the_same_for_a_members_email_and_anyone_elses(
        app, client, member_id, monkeypatch):
    """A worker's next request waits for whatever the last one left to do on its thread: if that were the
    lookup, the email and its delivery for a member but a lookup alone for a stranger, the next request's
    timing would tell them apart. Everything happens on the background thread, for both."""
    sent_on, real_send = [], transport.send

    def send(**kwargs):
        sent_on.append(threading.get_ident())
        real_send(**kwargs)

    monkeypatch.setattr(transport, "send", send)
    work = []
    for email in ("ada@example.com", "nobody@example.com"):
        token = csrf_token(client)
        with StatementCounter(app) as counter:
            response = client.post("/login", data={"email": email, "csrf_token": token})
            response.close()  # the response has gone: the after-response path runs here, on the request's thread
        work.append(counter.statements)
    assert work == [[], []] and sent_on == []
    assert jobs.drain()
    assert len(sent_on) == 1 and sent_on[0] != threading.get_ident()  # the member's email did go out
    assert [path.name.split("-", 3)[3] for path in mail_files(app)] == ["ada-example-com.eml"]


def test_a_slow_mail_server_never_slows_the_login_page(app, client, member_id, monkeypatch):
    real_send = transport.send

    def slow_send(**kwargs):
        time.sleep(0.5)
        real_send(**kwargs)

    monkeypatch.setattr(transport, "send", slow_send)
    timings = []
    for email in ("ada@example.com", "nobody@example.com"):
        token = csrf_token(client)
        started = time.perf_counter()
        response = client.post("/login", data={"email": email, "csrf_token": token})
        timings.append(time.perf_counter() - started)
        response.close()
    assert max(timings) < 0.4  # neither request waited for the 0.5 s send
    assert jobs.drain()
    assert len(mail_files(app)) == 1


def test_malformed_email_is_refused_without_revealing_anything(client):
    response = ask_for_link(client, "")
    assert response.status_code == 422 and "Enter your email address" in response.get_data(as_text=True)


@pytest.fixture
def limited_config(app_config):
    return {**app_config, "RATELIMIT_ENABLED": True, "LOGIN_RATE_LIMIT_EMAIL": "2 per hour",
            "LOGIN_RATE_LIMIT_IP": "4 per hour"}


def test_link_requests_are_rate_limited_per_email(app, limited_config, member_id, make_app):
    client = make_app({**limited_config, "LOGIN_RATE_LIMIT_IP": "100 per hour"}).test_client()
    # the same for a member's email and for nobody's: the limit says nothing about membership
    for email in ("ada@example.com", "nobody@example.com"):
        for _ in range(2):
            assert ask_for_link(client, email).status_code == 200
        blocked = ask_for_link(client, email.upper())
        assert blocked.status_code == 429 and "Too many" in blocked.get_data(as_text=True)
    assert ask_for_link(client, "someone-else@example.com").status_code == 200


def test_link_requests_are_rate_limited_per_ip(app, limited_config, make_app):
    limited = make_app(limited_config)
    here = limited.test_client()
    for n in range(4):
        assert ask_for_link(here, f"person{n}@example.com").status_code == 200
    assert ask_for_link(here, "person9@example.com").status_code == 429
    elsewhere = limited.test_client()
    response = elsewhere.post("/login", data={"email": "person9@example.com", "csrf_token": csrf_token(elsewhere)},
                              environ_base={"REMOTE_ADDR": "203.0.113.7"})
    assert response.status_code == 200


def test_password_attempts_are_rate_limited(app, limited_config, member_id, make_app):
    client = make_app(limited_config).test_client()
    for _ in range(2):
        response = client.post("/login/password", data={"email": "ada@example.com", "password": "guess",
                                                         "csrf_token": csrf_token(client)})
        assert response.status_code == 401
    response = client.post("/login/password", data={"email": "ada@example.com", "password": "guess",
                                                    "csrf_token": csrf_token(client)})
    assert response.status_code == 429


@pytest.mark.parametrize("path,data", [
    ("/login", {"email": "ada@example.com"}),
    ("/login/password", {"email": "ada@example.com", "password": "whatever1234"}),
    ("/logout", {}),
    ("/account/password", {"password": "a-new-password", "confirm": "a-new-password"}),
])
def test_every_form_needs_a_csrf_token(app, client, member_id, path, data):
    with client.session_transaction() as browser:
        browser["member_id"] = member_id
    missing = client.post(path, data=data)
    assert missing.status_code == 400 and missing.mimetype == "text/html"
    assert "reload the page and try again" in missing.get_data(as_text=True)
    wrong = client.post(path, data={**data, "csrf_token": "forged"})
    assert wrong.status_code == 400
    assert client.get("/account").status_code == 200  # still signed in: /logout did nothing
    with app.app_context():
        assert db.session.get(Member, member_id).password_hash is None
        assert db.session.scalar(select(OutboundEmail)) is None


def signed_in_client(app, member_id):
    client = app.test_client()
    with app.app_context():
        from membership import services

        url = services.login_url(db.session.get(Member, member_id))
    assert follow_link(client, path_of(url)).status_code == 302
    return client


def test_member_sets_a_password_and_signs_in_with_it(app, member_id):
    client = signed_in_client(app, member_id)
    page = client.get("/account").get_data(as_text=True)
    assert "Set a password" in page
    token = csrf_token(client, "/account")
    short = client.post("/account/password", data={"password": "short", "confirm": "short", "csrf_token": token})
    assert short.status_code == 422 and "at least 10 characters" in short.get_data(as_text=True)
    mismatch = client.post("/account/password", data={"password": "correct horse battery",
                                                      "confirm": "correct horse battery!", "csrf_token": token})
    assert mismatch.status_code == 422 and "not the same" in mismatch.get_data(as_text=True)
    done = client.post("/account/password", data={"password": "correct horse battery",
                                                  "confirm": "correct horse battery", "csrf_token": token})
    assert done.status_code == 302 and done.location == "/account"
    with app.app_context():
        stored = db.session.get(Member, member_id).password_hash
    assert stored != "correct horse battery" and check_password_hash(stored, "correct horse battery")
    assert stored.startswith("scrypt:")  # Werkzeug's default

    browser = app.test_client()
    token = csrf_token(browser)
    response = browser.post("/login/password", data={"email": "Ada@Example.com", "password": "correct horse battery",
                                                     "csrf_token": token})
    assert response.status_code == 302 and response.location == "/account"
    assert "ada@example.com" in browser.get("/account").get_data(as_text=True)


def test_wrong_password_and_unknown_email_get_the_same_answer(app, client, member_id):
    with committed(app) as session:
        from membership import services

        services.set_password(session, session.get(Member, member_id), "correct horse battery")
    answers = []
    for email, password in (("ada@example.com", "wrong password"), ("nobody@example.com", "correct horse battery")):
        response = client.post("/login/password", data={"email": email, "password": password,
                                                        "csrf_token": csrf_token(client)})
        answers.append((response.status_code, "do not match" in response.get_data(as_text=True)))
    assert answers == [(401, True), (401, True)]
    assert client.get("/account").status_code == 302


def test_member_without_a_password_cannot_sign_in_with_one(app, client, member_id):
    response = client.post("/login/password", data={"email": "ada@example.com", "password": "",
                                                    "csrf_token": csrf_token(client)})
    assert response.status_code == 422
    response = client.post("/login/password", data={"email": "ada@example.com", "password": "anything",
                                                    "csrf_token": csrf_token(client)})
    assert response.status_code == 401


def test_logout(app, member_id):
    client = signed_in_client(app, member_id)
    token = csrf_token(client, "/account")
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302 and response.location == "/login"
    assert "You are signed out" in client.get("/login").get_data(as_text=True)
    assert client.get("/account").location == "/login"


def test_account_needs_a_signed_in_member(client):
    response = client.get("/account")
    assert response.status_code == 302 and response.location == "/login"


def test_session_cookie_flags(app, member_id):
    client = app.test_client()
    with app.app_context():
        from membership import services

        url = services.login_url(db.session.get(Member, member_id))
    cookie = follow_link(client, path_of(url)).headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie


def test_session_cookie_is_secure_when_the_site_is_https(app, app_config, member_id, monkeypatch, make_app):
    monkeypatch.setenv("SITE_URL", "https://members.example.com")
    secure = make_app({k: v for k, v in app_config.items() if k != "SITE_URL"})
    client = secure.test_client()
    with secure.app_context():
        from membership import services

        url = services.login_url(db.session.get(Member, member_id))
    assert url.startswith("https://members.example.com/login/")
    # a browser sends the Referer the link's page allows (same-origin), which the CSRF check wants over HTTPS
    cookie = follow_link(client, path_of(url), base_url="https://members.example.com",
                         headers={"Referer": url}).headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
