"""Links that are credentials never rest in the outbox: a marker is stored, the link is made at delivery."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from admin import auth as owner_auth
from emails import services as email_services
from emails.models import EmailStatus, OutboundEmail
from extensions import db
from membership import login_links, services
from membership.models import Member
from tests import factories
from tests.helpers import committed, follow_link, login_link_in, path_of

TOKEN = re.compile(r"/login/([A-Za-z0-9_.\-]{20,})")


@pytest.fixture
def smtp_app(app, smtp_config, make_app):
    return make_app(smtp_config)


def welcome(app, email: str, name: str = "Grace") -> int:
    with app.app_context():
        member, _ = services.find_or_create_member(db.session, email, name=name)
        services.queue_welcome_email(db.session, member, [])
        db.session.commit()
        return member.id


def rows(app) -> list[OutboundEmail]:
    with app.app_context():
        found = list(db.session.scalars(select(OutboundEmail).order_by(OutboundEmail.id)))
        db.session.expunge_all()
        return found


def stored_tokens_that_work(app) -> list[str]:
    """Every login token anywhere in the outbox that would still sign someone in."""
    working = []
    with app.app_context():
        for row in db.session.scalars(select(OutboundEmail)):
            for token in TOKEN.findall(row.subject + row.text_body + row.html_body):
                if login_links.peek(db.session, token).status == login_links.OK:
                    working.append(token)
        db.session.rollback()
    return working


def text_of(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def signs_in_as(app, url: str) -> int | None:
    client = app.test_client()
    response = follow_link(client, path_of(url))
    if response.status_code != 302 or response.location != "/account":
        return None
    with client.session_transaction() as browser:
        return browser.get("member_id")


def test_the_row_holds_a_marker_and_the_message_over_smtp_a_link_that_signs_in(smtp_app, smtp):
    member_id = welcome(smtp_app, "grace@example.com")
    (message,) = smtp.wait_for(1)
    url = login_link_in(text_of(message))
    assert url in message.get_body(preferencelist=("html",)).get_content()  # one link, in both parts
    (row,) = rows(smtp_app)
    assert row.status == EmailStatus.SENT
    assert url.rsplit("/", 1)[1] not in row.text_body + row.html_body
    assert "[link made when sent: login/" in row.text_body and "[link made when sent: login/" in row.html_body
    assert stored_tokens_that_work(smtp_app) == []
    assert signs_in_as(smtp_app, url) == member_id


def test_a_retry_after_an_outage_carries_a_fresh_working_link(smtp_app, smtp):
    smtp.stop()
    member_id = welcome(smtp_app, "grace@example.com")
    (row,) = rows(smtp_app)
    assert row.status == EmailStatus.PENDING and row.attempts == 1
    smtp.restart()
    with smtp_app.app_context():
        email_services.resend(db.session, db.session.get(OutboundEmail, row.id))  # pending: tried again now
        db.session.commit()
    (message,) = smtp.wait_for(1)
    assert signs_in_as(smtp_app, login_link_in(text_of(message))) == member_id
    (row,) = rows(smtp_app)
    assert row.status == EmailStatus.SENT and row.attempts == 2
    assert stored_tokens_that_work(smtp_app) == []


def test_a_marker_copied_into_someone_elses_email_makes_no_link(smtp_app, smtp):
    victim = welcome(smtp_app, "grace@example.com")
    marker = re.search(r"\[link made when sent: [^\]]+\]", rows(smtp_app)[0].text_body).group(0)
    # e.g. read from a database dump, then typed as the buyer's name at a cart
    attacker = welcome(smtp_app, "mallory@example.com", name=marker)
    messages = smtp.wait_for(2)
    text = text_of(messages[1])
    assert messages[1]["To"] == "mallory@example.com" and marker in text  # left as it was typed
    assert [signs_in_as(smtp_app, "http://coursegate.test" + path)
            for path in re.findall(r"http://coursegate\.test(/login/[A-Za-z0-9_.\-]+)", text)] == [attacker]
    assert victim != attacker


def test_a_pending_email_whose_member_moved_to_another_address_is_not_sent_there(smtp_app, smtp):
    smtp.stop()
    member_id = welcome(smtp_app, "old@example.com")
    with committed(smtp_app) as session:
        session.get(Member, member_id).email = "new@example.com"
    smtp.restart()
    with smtp_app.app_context():
        assert email_services.sweep_pending() == 0  # not due yet
        email_services.deliver(rows(smtp_app)[0].id)
    (row,) = rows(smtp_app)
    assert row.status == EmailStatus.FAILED and "address changed" in row.last_error
    assert smtp.wait_for(1, timeout=0.3) == []
    with smtp_app.app_context():  # the owner resends it: to the current address, with a link that works
        email_services.resend(db.session, db.session.get(OutboundEmail, row.id))
        db.session.commit()
    (message,) = smtp.wait_for(1)
    assert message["To"] == "new@example.com" and signs_in_as(smtp_app, login_link_in(text_of(message))) == member_id


def stored_before_the_upgrade(app, status: str) -> tuple[int, str]:
    """A login email as the outbox kept it before links were made at send time: with its link."""
    with committed(app) as session:
        member = factories.make_member(email="grace@example.com")
        url = services.login_url(member)
        session.add(OutboundEmail(recipient=member.email, template="login_link", subject="Your link",
                                  text_body=f"Sign in: {url}\n", html_body=f'<a href="{url}">Sign in</a>',
                                  member_id=member.id, status=status))
        session.flush()
        return member.id, url


def test_an_email_queued_with_its_link_before_the_upgrade_is_sent_with_a_fresh_one(smtp_app, smtp):
    member_id, old_url = stored_before_the_upgrade(smtp_app, EmailStatus.PENDING)
    with smtp_app.app_context():
        assert email_services.sweep_pending() == 1
    (message,) = smtp.wait_for(1)
    assert signs_in_as(smtp_app, login_link_in(text_of(message))) == member_id
    (row,) = rows(smtp_app)
    assert old_url not in row.text_body + row.html_body and "[link made when sent: login/" in row.text_body


def test_the_admin_and_the_api_show_what_a_link_was_and_no_token(app, client, api):
    welcome(app, "grace@example.com")
    (row,) = rows(app)
    with app.app_context():
        owner = owner_auth.create_owner(db.session, "owner@example.com", "correct horse battery")
        db.session.commit()
        owner_id = owner.id
    with client.session_transaction() as browser:
        browser["owner_id"] = owner_id
    page = client.get(f"/admin/emails/{row.id}").get_data(as_text=True)
    shown = api.get(f"/api/v1/emails/{row.id}").json
    for text in (page, shown["text_body"], shown["html_body"]):
        assert "[login link, made when sent]" in text
        assert "/login/" not in text and "#" + row.text_body.split("#", 1)[1][:10] not in text


def test_scrub_links_takes_the_links_out_of_emails_stored_before(app, runner):
    stored_before_the_upgrade(app, EmailStatus.SENT)
    assert stored_tokens_that_work(app) != []
    result = runner.invoke(args=["emails", "scrub-links"])
    assert result.exit_code == 0 and "1 email(s)" in result.output
    assert stored_tokens_that_work(app) == []
    assert "0 email(s)" in runner.invoke(args=["emails", "scrub-links"]).output
