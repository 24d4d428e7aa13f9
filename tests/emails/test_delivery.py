"""The outbox over real SMTP (aiosmtpd): welcome emails, dedupe, outages, retries, the sweep, the CLI."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

import jobs
import timeutil
from emails import services as email_services
from emails.models import OutboundEmail
from extensions import db
from membership import login_links
from membership import services
from tests import factories
from tests.helpers import follow_link, login_link_in, path_of
from membership import grants


@pytest.fixture
def smtp_app(app, smtp_config, make_app):
    """The app sending through the in-process SMTP server (``app`` has emptied the tables)."""
    return make_app(smtp_config)


def buy(app, email: str, name: str = "Grace") -> tuple[int, bool]:
    """What a cart webhook does: find or create the member, grant, welcome only a new member; commit once."""
    with app.app_context():
        level = db.session.scalar(select(services.Level).where(services.Level.slug == "gold")) or \
            factories.make_level(name="Gold", slug="gold")
        member, created = services.find_or_create_member(db.session, email, name=name)
        grants.open_grant(db.session, member, level)
        if created:
            services.queue_welcome_email(db.session, member, [level])
        db.session.commit()
        return member.id, created


def emails(app) -> list[OutboundEmail]:
    with app.app_context():
        rows = list(db.session.scalars(select(OutboundEmail).order_by(OutboundEmail.id)))
        db.session.expunge_all()
        return rows


def text_part(message) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def test_new_members_welcome_email_arrives_over_smtp_with_a_link_that_signs_in(smtp_app, smtp):
    member_id, created = buy(smtp_app, "Grace@Example.com")
    assert created
    (message,) = smtp.wait_for(1)
    assert message["To"] == "grace@example.com"
    assert message["Subject"] == "Welcome to Test Academy: your login link"
    assert message["From"] == "Test Academy <hello@coursegate.test>"
    html = message.get_body(preferencelist=("html",)).get_content()
    url = login_link_in(text_part(message))
    assert url.startswith("http://coursegate.test/login/") and url in html

    client = smtp_app.test_client()
    response = follow_link(client, path_of(url), follow_redirects=True)
    assert response.status_code == 200 and response.request.path == "/account"
    page = response.get_data(as_text=True)
    assert "grace@example.com" in page and "Gold" in page
    (row,) = emails(smtp_app)
    assert row.status == "sent" and row.attempts == 1 and row.sent_at is not None and row.member_id == member_id


def test_existing_member_gets_no_welcome_and_a_redelivered_order_sends_nothing_twice(smtp_app, smtp):
    buy(smtp_app, "grace@example.com")
    smtp.wait_for(1)
    _, created = buy(smtp_app, "GRACE@example.com")  # a second order from the same person
    assert not created
    with smtp_app.app_context():  # a redelivered webhook queuing the welcome again
        member = services.member_by_email(db.session, "grace@example.com")
        services.queue_welcome_email(db.session, member, [])
        services.queue_welcome_email(db.session, member, [])
        db.session.commit()
    assert len(smtp.wait_for(2, timeout=0.5)) == 1
    assert [row.template for row in emails(smtp_app)] == ["welcome"]


def test_smtp_outage_keeps_the_email_pending_until_the_sweep_delivers_it(smtp_app, smtp):
    smtp.stop()
    start = timeutil.now()
    with timeutil.frozen(start) as clock:
        buy(smtp_app, "grace@example.com")
        (row,) = emails(smtp_app)
        assert row.status == "pending" and row.attempts == 1
        assert "ConnectionRefusedError" in row.last_error
        assert row.next_attempt_at == start + timedelta(seconds=email_services.RETRY_BACKOFF[0])

        with smtp_app.app_context():  # not due yet: the sweep leaves it alone
            assert email_services.sweep_pending() == 0
        clock[0] = start + timedelta(seconds=61)
        with smtp_app.app_context():  # due, but the server is still down: a second attempt, a longer wait
            assert email_services.sweep_pending() == 1
        (row,) = emails(smtp_app)
        assert row.status == "pending" and row.attempts == 2
        assert row.next_attempt_at == clock[0] + timedelta(seconds=email_services.RETRY_BACKOFF[1])

        smtp.restart()
        clock[0] = start + timedelta(minutes=10)
        result = smtp_app.test_cli_runner().invoke(args=["emails", "send-pending"])
        assert result.exit_code == 0 and "Tried 1" in result.output
    (message,) = smtp.wait_for(1)
    assert message["To"] == "grace@example.com"
    (row,) = emails(smtp_app)
    assert row.status == "sent" and row.attempts == 3 and row.last_error is None
    assert row.sent_at == start + timedelta(minutes=10)


def test_email_is_marked_failed_after_the_last_retry(smtp_app, smtp):
    smtp.stop()
    start = timeutil.now()
    with timeutil.frozen(start) as clock:
        buy(smtp_app, "grace@example.com")
        for _ in email_services.RETRY_BACKOFF:
            clock[0] += timedelta(days=1)
            with smtp_app.app_context():
                email_services.sweep_pending()
    (row,) = emails(smtp_app)
    assert row.status == "failed" and row.attempts == len(email_services.RETRY_BACKOFF) + 1
    assert row.next_attempt_at is None and row.last_error
    smtp.restart()  # the fixture stops it again


def test_delivery_is_idempotent(smtp_app, smtp):
    buy(smtp_app, "grace@example.com")
    smtp.wait_for(1)
    (row,) = emails(smtp_app)
    with smtp_app.app_context():
        email_services.deliver(row.id)  # a duplicate trigger (a redelivered Celery message)
    assert len(smtp.wait_for(2, timeout=0.3)) == 1


def test_a_rolled_back_transaction_sends_nothing(smtp_app, smtp):
    with smtp_app.app_context():
        member = factories.make_member()
        services.queue_welcome_email(db.session, member, [])
        db.session.rollback()
    assert smtp.wait_for(1, timeout=0.3) == []
    assert emails(smtp_app) == []


def test_without_mail_server_emails_are_written_as_eml_files(app, app_config):
    from pathlib import Path

    with app.app_context():
        member = factories.make_member(email="file@example.com")
        services.queue_welcome_email(db.session, member, [])
        db.session.commit()
    (path,) = Path(app_config["COURSEGATE_MAIL_DIR"]).glob("*.eml")
    content = path.read_text()
    assert "To: file@example.com" in content and "/login/" in content
    # The link stands whole on one line, so it can be copied straight from the file.
    [line] = [line for line in content.splitlines() if "/login/" in line and line.startswith("http")]
    token = line.rsplit("/login/", 1)[1]
    with app.app_context():
        assert login_links.redeem(db.session, token).status == "ok"


def test_login_page_link_arrives_over_smtp_and_works_for_an_hour(smtp_app, smtp):
    from tests.helpers import csrf_token

    buy(smtp_app, "grace@example.com")
    smtp.wait_for(1)
    client = smtp_app.test_client()
    start = timeutil.now()
    with timeutil.frozen(start) as clock:
        response = client.post("/login", data={"email": "grace@example.com", "csrf_token": csrf_token(client)})
        response.close()
        assert jobs.drain()
        login_email = smtp.wait_for(2)[1]
        assert login_email["Subject"] == "Your login link for Test Academy"
        path = path_of(login_link_in(text_part(login_email)))
        clock[0] = start + timedelta(minutes=61)
        assert follow_link(client, path).status_code == 410
        clock[0] = start + timedelta(minutes=59)
        assert follow_link(client, path).location == "/account"


def test_mail_folder_can_be_set_from_the_environment(app, app_config, make_app, monkeypatch, tmp_path):
    from pathlib import Path

    monkeypatch.setenv("COURSEGATE_MAIL_DIR", str(tmp_path / "outbox"))
    configured = make_app({k: v for k, v in app_config.items() if k != "COURSEGATE_MAIL_DIR"})
    with configured.app_context():
        services.queue_welcome_email(db.session, factories.make_member(email="env@example.com"), [])
        db.session.commit()
    assert len(list(Path(tmp_path / "outbox").glob("*-env-example-com.eml"))) == 1
