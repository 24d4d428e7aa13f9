"""The admin's email page on a phone: the stored email and its plain text (with a 200-character login link)
wrap inside the page instead of widening it."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from emails.models import OutboundEmail
from extensions import db
from membership import services
from tests import factories
from tests.admin.conftest import OWNER_EMAIL, OWNER_PASSWORD
from tests.admin.test_browser import CHROMIUM, browser  # noqa: F401 (fixture)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium"),
]


def test_the_email_page_fits_a_375px_phone(browser, live_server, app, owner):
    with app.app_context():
        services.queue_welcome_email(db.session, factories.make_member(email="jane@example.com"),
                                     [factories.make_level(name="Pro")])
        db.session.commit()
        email_id = db.session.scalar(select(OutboundEmail.id))
    page = browser.new_context(base_url=live_server, viewport={"width": 375, "height": 800}).new_page()
    page.goto("/admin/login")
    page.get_by_label("Email").fill(OWNER_EMAIL)
    page.get_by_label("Password").fill(OWNER_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/admin/$"))
    page.goto(f"/admin/emails/{email_id}")
    text = page.locator("pre.body")
    assert "[login link, made when sent]" in text.inner_text()  # the outbox keeps no working link
    assert text.evaluate("e => e.scrollWidth <= e.clientWidth")
    frame = page.frame_locator("iframe.email").locator("html")
    assert frame.evaluate("e => e.scrollWidth <= e.clientWidth"), "the email inside the page scrolls sideways"
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 375
