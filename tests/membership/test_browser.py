"""The member's pages and emails in Debian's Chromium at phone widths: the welcome email at 375 px, /account and
/account/billing at 390 px, with nothing wider than the screen. Screenshots go to ``COURSEGATE_SCREENSHOTS``
(``scripts/admin-screenshots`` refreshes docs/screenshots/) or a temporary folder."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from emails.models import OutboundEmail
from extensions import db
from membership import services
from tests import factories
from tests.admin.test_browser import CHROMIUM, browser, expect, shots  # noqa: F401 (fixtures)
from tests.billing.helpers import make_plan, sign_up
from tests.helpers import delivered_text

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium"),
]

PASSWORD = "a long enough password"
WIDER_THAN_SCREEN = """() => {
  const width = document.documentElement.clientWidth;
  const wide = [...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right > width + 0.5);
  return {scroll: document.documentElement.scrollWidth, width, wide: wide.map(e => e.tagName + '#' + e.id)};
}"""


@pytest.fixture
def app_config(app_config):
    return {**app_config, "WTF_CSRF_ENABLED": False}  # the sandbox sign-up below posts without tokens


def phone(browser, live_server, width: int):
    context = browser.new_context(base_url=live_server, java_script_enabled=True, is_mobile=True,
                                  viewport={"width": width, "height": 800}, device_scale_factor=2)
    page = context.new_page()
    page.set_default_timeout(10_000)
    return page


def fits(page, width: int) -> None:
    result = page.evaluate(WIDER_THAN_SCREEN)
    assert result["width"] == width
    assert result["scroll"] <= width and result["wide"] == [], result


def test_the_welcome_email_fits_a_375px_phone(browser, app, shots):
    with app.app_context():
        course = factories.make_course(title="Mobile & Universal App Pro")
        course.url = "https://school.example.com/courses/mobile-and-universal-app-pro/start-here?utm=welcome"
        level = factories.make_level(name="Pro yearly", courses=[course])
        services.queue_welcome_email(db.session, factories.make_member(email="jane.buyer@example.com",
                                                                       name="Jane Buyer"), [level])
        db.session.commit()
        email = db.session.scalar(select(OutboundEmail))
    html = delivered_text(email.id, app, part="html")  # as it arrives: the login link is made at delivery
    assert len(delivered_text(email.id, app)) > 300 and "/login/" in html  # the long, unbroken link is in there
    page = phone(browser, "http://127.0.0.1", 375)
    page.set_content(html)
    fits(page, 375)
    button = page.get_by_role("link", name="Sign in to Test Academy")
    box = button.bounding_box()
    assert box["height"] >= 40 and box["x"] + box["width"] <= 375  # a button a thumb can hit
    expect(page.get_by_role("link", name="Mobile & Universal App Pro")).to_be_visible()
    shots(page, "20-welcome-email-phone")


def test_account_and_billing_fit_a_390px_phone_and_pause_works(browser, live_server, app, client, shots):
    with app.app_context():
        course = factories.make_course(title="Mobile & Universal App Pro")
        course.url = "https://school.example.com/courses/pro"
        plan = make_plan(name="Pro monthly", level=factories.make_level(name="Pro", courses=[course]))
        plan.max_pause_days = 60
        db.session.commit()
        mandate = sign_up(client, plan.id, "a.rather.long.address.for.a.phone@example.com")
        services.set_password(db.session, mandate.member, PASSWORD)
        cart = factories.make_integration(name="ThriveCart", manage_subscriptions_url="https://shop.example.com/hub")
        factories.grant(mandate.member, factories.make_level(name="Coaching yearly"), source_kind="order",
                        integration_id=cart.id, order_ref="23370556", line_ref="product-12",
                        subscription_ref="3498819")
        db.session.commit()

    page = phone(browser, live_server, 390)
    page.goto("/login")
    fits(page, 390)
    page.locator("#password-email").fill("a.rather.long.address.for.a.phone@example.com")
    page.locator("#password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in with password").click()
    page.wait_for_url("**/account")
    expect(page.get_by_role("link", name="Mobile & Universal App Pro")).to_have_attribute(
        "href", "https://school.example.com/courses/pro")
    fits(page, 390)
    for field in page.locator("input:not([type=hidden])").all():
        box = field.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= 390, field.get_attribute("id")
    shots(page, "21-account-phone")

    page.goto("/account/billing")
    fits(page, 390)
    expect(page.get_by_role("link", name="Manage this subscription")).to_have_attribute(
        "href", "https://shop.example.com/hub")
    expect(page.get_by_text("You have no active subscriptions")).to_have_count(0)
    page.get_by_label("Pause for (days, up to 60)").fill("14")
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_text("Pro monthly is paused until")).to_be_visible()
    expect(page.get_by_role("button", name="Resume now")).to_be_visible()
    fits(page, 390)
    shots(page, "22-billing-paused-phone")
    page.get_by_role("button", name="Resume now").click()
    expect(page.get_by_text("Pro monthly is running again.")).to_be_visible()
