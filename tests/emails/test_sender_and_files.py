"""Who an email comes from when the owner set no sender, and the .eml files of the embedded default."""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

import pytest

import config
from emails import transport
from extensions import db
from membership import services
from tests import factories


@pytest.mark.parametrize(("name", "url", "sender"), [
    ("Painting School", "https://members.painting.example/", "Painting School <no-reply@members.painting.example>"),
    ("Smith, Jones & Co", "https://school.example.com", '"Smith, Jones & Co" <no-reply@school.example.com>'),
    ("Coursegate", "http://127.0.0.1:5000", "Coursegate <no-reply@localhost>"),
    ("My Site", "http://localhost:5000", "My Site <no-reply@localhost>"),
])
def test_without_mail_default_sender_emails_come_from_the_site(name, url, sender):
    assert config.default_sender(name, url) == sender


def test_the_site_name_reaches_sender_and_subject_of_a_real_message(make_app, app_config, tmp_path):
    site = make_app({**app_config, "SITE_NAME": "Painting School", "SITE_URL": "https://painting.example",
                     "MAIL_DEFAULT_SENDER": None, "COURSEGATE_MAIL_DIR": str(tmp_path / "box")})
    with site.app_context():
        services.queue_welcome_email(db.session, factories.make_member(email="pia@example.com"), [])
        db.session.commit()
    (path,) = (tmp_path / "box").glob("*.eml")
    message = message_from_bytes(path.read_bytes(), policy=policy.default)
    assert message["From"] == "Painting School <no-reply@painting.example>"
    assert message["Subject"] == "Welcome to Painting School: your login link"
    assert "Coursegate" not in path.read_text()


def test_the_environment_default_sends_as_coursegate_only_when_no_name_is_set(tmp_path):
    assert config.from_environment(str(tmp_path), {})["SITE_NAME"] == "Coursegate"
    assert config.from_environment(str(tmp_path), {})["MAIL_DEFAULT_SENDER"] is None
    named = config.from_environment(str(tmp_path), {"COURSEGATE_SITE_NAME": "Painting School"})
    assert named["SITE_NAME"] == "Painting School"


def test_a_second_database_never_overwrites_an_earlier_eml(app, app_config):
    """Two databases writing to one folder both have an email 1: both files stay."""
    folder = Path(app_config["COURSEGATE_MAIL_DIR"])
    with app.app_context():
        for body in ("first database", "second database"):
            transport.send(recipient="same@example.com", subject=body, text=body, html=f"<p>{body}</p>", email_id=1)
    files = sorted(folder.glob("*.eml"))
    assert len(files) == 2
    assert [message_from_bytes(f.read_bytes())["Subject"] for f in files] == ["first database", "second database"]
    assert all(f.name.endswith("-same-example-com.eml") and "-000001-" in f.name for f in files)
