"""The admin in a real browser: Debian's headless Chromium driven by Playwright, against the live server.

Run with JavaScript switched off: every form must work without it. Set ``COURSEGATE_SCREENSHOTS=docs/screenshots``
(``scripts/admin-screenshots`` does) to refresh the committed screenshots of the main pages.
"""

from __future__ import annotations

import os
import random
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from sqlalchemy import select

import timeutil
from tests.admin.conftest import OWNER_EMAIL, OWNER_PASSWORD
from tests.admin.orders import form_body, order_with_bump_and_upsell
from tests.billing.test_reports import books  # noqa: F401  (constructed books for the money-at-risk page)
from membership import grants

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="Debian's chromium is not installed at /usr/bin/chromium (apt-get install -y chromium)"),
]


sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (the test extras)")
expect = sync_api.expect


@pytest.fixture
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def shots(tmp_path):
    folder = Path(os.environ.get("COURSEGATE_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)

    def shot(page, name: str) -> None:
        page.screenshot(path=str(folder / f"{name}.png"), full_page=True)

    return shot


def new_page(browser, live_server, *, width: int = 1280, height: int = 900):
    context = browser.new_context(base_url=live_server, java_script_enabled=False,
                                  viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(10_000)
    return page


def nav(page, label: str):
    return page.get_by_role("navigation", name="Admin").get_by_role("link", name=label, exact=True)


def sign_in(page) -> None:
    page.goto("/admin/")
    assert "/admin/login" in page.url
    page.get_by_label("Email").fill(OWNER_EMAIL)
    page.get_by_label("Password").fill(OWNER_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/admin/$"))


def seed_history(app) -> None:
    """Members who joined, and grants revoked, over the last 90 days: something for the chart to show."""
    from extensions import db
    from tests import factories

    rng = random.Random(8)
    with app.app_context():
        level = factories.make_level(name="Archive", slug="archive")
        now = timeutil.now()
        for n in range(140):
            member = factories.make_member(email=f"student{n:03d}@example.com", name=f"Student {n:03d}")
            member.created_at = now - timedelta(days=rng.randint(0, 89), hours=rng.randint(0, 23))
            grant = factories.grant(member, level, starts_at=member.created_at)
            if n % 5 == 0:
                grants.revoke(db.session, [grant], "refund",
                                      at=member.created_at + timedelta(days=rng.randint(0, 10)))
        db.session.commit()


def test_owner_sets_up_a_product_and_looks_after_a_member(browser, live_server, app, owner, shots):
    from extensions import db
    from fulfillment import rules

    seed_history(app)

    page = new_page(browser, live_server)
    page.goto("/admin/login")
    shots(page, "01-sign-in")
    sign_in(page)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    assert page.locator("svg.chart polyline").count() == 2
    expect(page.get_by_role("region", name="Getting started")).to_contain_text("2 of 5 done.")
    shots(page, "02-dashboard")

    # A course, published straight away, and the levels a purchase unlocks.
    nav(page, "Courses").click()
    page.get_by_role("link", name="Add a course").click()
    page.get_by_label("Title").fill("Mobile App Pro")
    page.get_by_label("Slug").fill("mobile-app-pro")
    page.get_by_label("Status").select_option("published")
    page.get_by_role("button", name="Create course").click()
    expect(page.get_by_text("Course “Mobile App Pro” created (published).")).to_be_visible()
    shots(page, "03-courses")

    for name, slug in (("Pro", "pro"), ("Bonus Pack", "bonus-pack"), ("VIP Coaching", "vip-coaching")):
        nav(page, "Levels").click()
        page.get_by_role("link", name="Add a level").click()
        page.get_by_label("Name").fill(name)
        page.get_by_label("Slug").fill(slug)
        page.get_by_label("Mobile App Pro (published)").check()
        page.get_by_role("button", name="Create level").click()
        expect(page.get_by_text(f"Level “{name}” created.")).to_be_visible()
    shots(page, "04-levels")

    # The ThriveCart integration: its webhook URL and secret, shown once.
    nav(page, "Integrations").click()
    page.get_by_role("link", name="Connect a cart").click()
    page.get_by_label("Cart", exact=True).select_option("thrivecart")
    page.get_by_label("Name").fill("My ThriveCart")
    page.get_by_label("Secret").fill("TESTSECRET")
    page.get_by_role("button", name="Create integration").click()
    webhook_url = page.get_by_label("Webhook URL").input_value()
    assert re.fullmatch(r"http://coursegate\.test/webhooks/thrivecart/\d+", webhook_url)
    assert page.get_by_label("Secret").input_value() == "TESTSECRET"
    shots(page, "05-integration-created")
    integration_id = int(webhook_url.rsplit("/", 1)[1])

    # The mapping screen: product 12 opens Pro, its bump Bonus Pack, upsell 3 VIP Coaching.
    page.get_by_role("link", name="Set up its products").click()
    page.get_by_label("Cart product id").fill("12")
    page.get_by_role("button", name="Configure this product").click()
    page.get_by_label("The same level(s) for every pricing option").check()
    page.get_by_role("group", name="Levels for every pricing option").get_by_label("Pro").check()
    page.get_by_role("group", name="Level(s) the bump unlocks").get_by_label("Bonus Pack").check()
    page.get_by_role("button", name="Save product").click()
    expect(page.get_by_text("Product 12 saved: product 12 unlocks Pro;")).to_be_visible()
    assert page.locator("main select").count() == 0  # checkboxes everywhere, no Ctrl-click lists
    shots(page, "06-product-mapping")
    # Upsells are the integration's: their own page.
    page.get_by_role("link", name="edit them on the integration's upsells and downsells page").click()
    page.get_by_label("Upsell id, row 1", exact=True).fill("3")
    page.get_by_role("group", name="Levels for upsell id, row 1").get_by_label("VIP Coaching").check()
    page.get_by_role("button", name="Save upsells and downsells").click()
    expect(page.get_by_text("Upsells and downsells saved: upsell 3 unlocks VIP Coaching.")).to_be_visible()
    with app.app_context():
        def unlocks(item_type, product_id):
            return [lv.name for lv in rules.levels_for_item(db.session, integration_id, item_type, product_id, "1")]

        assert unlocks("product", "12") == ["Pro"]
        assert unlocks("bump", "12") == ["Bonus Pack"]
        assert unlocks("upsell", "3") == ["VIP Coaching"]
    page.get_by_role("link", name="← My ThriveCart").click()
    expect(page.get_by_role("link", name="Product 12")).to_be_visible()

    # A test delivery from the integration's page: recorded, ignored (test orders are not accepted here).
    page.get_by_role("button", name="Send a test delivery").click()
    expect(page.get_by_role("status").filter(has_text="Test delivery sent as event #")).to_contain_text("ignored")
    shots(page, "07-integration")

    # The real ThriveCart order (product 12, its bump and upsell 3), posted to the webhook URL as ThriveCart does.
    webhook_path = urlsplit(webhook_url).path
    body, content_type = form_body(order_with_bump_and_upsell())
    answer = requests.post(live_server + webhook_path, data=body, headers={"Content-Type": content_type}, timeout=30)
    assert answer.status_code == 200 and answer.json()["status"] == "processed", answer.text
    order_event_id = answer.json()["event_id"]

    # The event page says what the order did, with links.
    page.goto(f"/admin/events/{order_event_id}")
    did = page.get_by_role("region", name="What this delivery did")
    expect(did).to_contain_text("jane.buyer@example.com (created)")
    for level in ("Pro", "Bonus Pack", "VIP Coaching"):
        expect(did.get_by_role("link", name=level)).to_be_visible()
    expect(did.get_by_role("link", name="welcome")).to_be_visible()
    shots(page, "19-event-processed")

    # The buyer appears in the admin with three grants.
    nav(page, "Members").click()
    page.get_by_label("Search by email or name").fill("jane")
    page.get_by_role("button", name="Search").click()
    shots(page, "08-members")
    page.get_by_role("link", name="jane.buyer@example.com").click()
    grants = page.get_by_role("table", name="Grants of jane.buyer@example.com")
    for level in ("Pro", "Bonus Pack", "VIP Coaching"):
        expect(grants.get_by_role("row").filter(has_text=level).get_by_text("active")).to_be_visible()
    expect(grants.get_by_role("row")).to_have_count(4)  # the header and three grants
    orders = page.get_by_role("table", name="Orders of jane.buyer@example.com")
    expect(orders.get_by_role("link", name=f"#{order_event_id} order.success")).to_be_visible()
    expect(page.get_by_role("table", name="Cart events of jane.buyer@example.com")).to_contain_text("processed")
    page.get_by_label("Tag", exact=True).fill("VIP")
    page.get_by_role("button", name="Add tag").click()
    expect(page.get_by_text("Tagged jane.buyer@example.com with “vip”.")).to_be_visible()
    shots(page, "09-member")

    # Revoke one of the three: the bump, refunded by hand.
    page.get_by_role("link", name=re.compile(r"Extend or revoke Bonus Pack")).click()
    shots(page, "10-grant")
    page.get_by_label("Reason").fill("Refunded the bump by hand")
    page.get_by_role("button", name="Revoke access").click()
    expect(page.get_by_text("“Bonus Pack” revoked for jane.buyer@example.com.")).to_be_visible()
    row = page.get_by_role("table", name="Grants of jane.buyer@example.com").get_by_role("row").filter(
        has_text="Bonus Pack")
    expect(row.get_by_text("revoked", exact=True)).to_be_visible()
    expect(row.get_by_text("Refunded the bump by hand")).to_be_visible()
    expect(page.get_by_role("table", name="Grants of jane.buyer@example.com").get_by_text(
        "active", exact=True)).to_have_count(2)

    # An order with an unmapped downsell needs attention; map it, then replay the event from the Events page.
    second = order_with_bump_and_upsell(email="sam.buyer@example.com", order_id="23370999")
    second["purchase_map"] = ["product-12", "downsell-5"]
    second["purchase_map_flat"] = "product-12,downsell-5"
    second["customer"].update(name="Sam Buyer", first_name="Sam")
    second["order"]["charges"][2].update(reference="5", item_type="downsell", item_identifier="downsell_5")
    second["order"]["charges"].pop(1)
    second["purchases"] = [charge["name"] for charge in second["order"]["charges"]]
    body, content_type = form_body(second)
    answer = requests.post(live_server + webhook_path, data=body, headers={"Content-Type": content_type}, timeout=30)
    assert answer.json()["status"] == "needs_attention", answer.text
    attention_id = answer.json()["event_id"]

    nav(page, "Dashboard").click()
    page.get_by_role("link", name=re.compile("events needing attention")).click()
    expect(page.get_by_label("Status")).to_have_value("attention")
    page.get_by_role("link", name=f"#{attention_id}", exact=True).click()
    expect(page.get_by_text("No fulfillment rule maps downsell-5")).to_be_visible()
    expect(page.get_by_role("region", name="Payload")).to_contain_text('"purchase_map": [')
    expect(page.get_by_role("region", name="Payload")).not_to_contain_text("TESTSECRET")
    shots(page, "16-event")
    did = page.get_by_role("region", name="What this delivery did")
    expect(did).to_contain_text("sam.buyer@example.com (created)")
    expect(did.get_by_role("link", name="Pro")).to_be_visible()
    page.get_by_role("link", name="Map downsell-5").click()  # straight to where the rule is made
    page.get_by_label("Downsell id, row 1", exact=True).fill("5")
    page.get_by_role("group", name="Levels for downsell id, row 1").get_by_label("VIP Coaching").check()
    page.get_by_role("button", name="Save upsells and downsells").click()
    expect(page.get_by_text("downsell 5 unlocks VIP Coaching")).to_be_visible()
    nav(page, "Events").click()
    page.get_by_label("Buyer email").fill("sam.buyer@example.com")
    page.get_by_role("button", name="Filter").click()
    shots(page, "15-events")
    page.get_by_role("link", name=f"#{attention_id}", exact=True).click()
    page.get_by_role("button", name="Replay this event").click()
    expect(page.get_by_text(f"Event #{attention_id} replayed: processed.")).to_be_visible()
    # A processed event is never applied twice: the same refusal as the API.
    page.get_by_role("button", name="Replay this event").click()
    expect(page.get_by_role("alert")).to_contain_text("That event was processed already")
    with app.app_context():
        from membership.models import Grant, Member
        sam = db.session.scalars(select(Member).where(Member.email == "sam.buyer@example.com")).one()
        assert sorted(g.line_ref for g in db.session.scalars(select(Grant).where(Grant.member_id == sam.id))) == [
            "downsell-5", "product-12"]

    # A subscription plan for the Pro level.
    nav(page, "Plans").click()
    page.get_by_label("Name").fill("Pro monthly")
    page.get_by_label("Level it renews").select_option(label="Pro")
    page.get_by_label("Price per interval").fill("49.00")
    page.get_by_label("Currency").fill("usd")
    page.get_by_role("button", name="Create plan").click()
    expect(page.get_by_text("Plan “Pro monthly” created: 49.00 USD every month.")).to_be_visible()
    nav(page, "Plans").click()
    shots(page, "17-plans")

    # A member added by hand, granted a level with a reason.
    nav(page, "Members").click()
    page.get_by_role("link", name="Add a member").click()
    page.get_by_label("Email").fill("Kim.Raffle@example.com")
    page.get_by_label("Name").fill("Kim Raffle")
    page.get_by_role("button", name="Add member").click()
    expect(page.get_by_text("Member kim.raffle@example.com added.")).to_be_visible()
    page.get_by_label("Level", exact=True).select_option(label="VIP Coaching")
    page.get_by_label("Reason").fill("Won the webinar raffle")
    page.get_by_role("button", name="Grant level").click()
    expect(page.get_by_text("kim.raffle@example.com now has “VIP Coaching”.")).to_be_visible()
    page.get_by_role("button", name="Resend the welcome email").click()
    expect(page.get_by_text("is on its way")).to_be_visible()

    nav(page, "Emails").click()
    shots(page, "11-emails")
    page.get_by_role("link", name="Preview every email template").click()
    page.get_by_role("link", name="welcome").click()
    shots(page, "12-email-preview")
    nav(page, "API keys").click()
    page.get_by_label("Name").fill("my WordPress site")
    page.get_by_role("button", name="Create key").click()
    assert page.get_by_label("Your new API key").input_value().startswith("cg_")
    page.get_by_role("link", name="Back to API keys").click()
    shots(page, "13-api-keys")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible()
    page.goto("/admin/members")
    assert "/admin/login" in page.url


def test_sign_in_lockout_in_the_browser(browser, live_server, owner):
    page = new_page(browser, live_server)
    page.goto("/admin/login")
    for _ in range(5):
        page.get_by_label("Email").fill(OWNER_EMAIL)
        page.get_by_label("Password").fill("wrong password")
        page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert").filter(has_text="locked")).to_be_visible()


def test_usable_on_a_tablet_and_with_the_keyboard(browser, live_server, owner, shots):
    page = new_page(browser, live_server, width=768, height=1024)
    sign_in(page)
    for path in ("/admin/", "/admin/members", "/admin/integrations/new", "/admin/emails", "/admin/events",
                 "/admin/plans", "/admin/subscriptions", "/admin/invoices", "/admin/automations"):
        page.goto(path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{path} scrolls sideways on a tablet by {overflow}px"
    page.goto("/admin/members")
    shots(page, "14-members-tablet")

    # The first Tab lands on "Skip to content"; following it moves focus to the page's main content, past the menu.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Skip to content"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Add a member"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline != "none"


def test_a_little_javascript_tidies_the_mapping_screen_and_adds_copy_buttons(browser, live_server, app, owner):
    from extensions import db
    from tests import factories

    with app.app_context():
        factories.make_level(name="Pro")
        integration = factories.make_integration(name="My ThriveCart")
        db.session.commit()
        integration_id = integration.id
    context = browser.new_context(base_url=live_server, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    sign_in(page)
    page.goto(f"/admin/integrations/{integration_id}")
    expect(page.get_by_role("button", name="Copy Webhook URL")).to_be_visible()

    page.goto(f"/admin/integrations/{integration_id}/products/12")
    per_option = page.get_by_role("table", name="Levels per pricing option")
    every_option = page.get_by_role("group", name="Levels for every pricing option")
    expect(every_option).to_be_visible()
    expect(per_option).to_be_hidden()
    page.get_by_label("A level per pricing option").check()
    expect(per_option).to_be_visible()
    expect(every_option).to_be_hidden()
    assert errors == []  # nothing refused by the Content-Security-Policy, no script errors


def _steps(page) -> dict[str, str]:
    items = page.get_by_role("region", name="Getting started").get_by_role("listitem")
    return {item.get_by_role("link").inner_text(): item.locator(".badge").inner_text() for item in items.all()}


def test_the_getting_started_checklist_follows_the_install(browser, live_server, app, owner, shots):
    from extensions import db
    from tests import factories

    page = new_page(browser, live_server)
    sign_in(page)
    assert _steps(page) == {"Publish a course": "To do", "Make a level": "To do", "Connect a cart": "To do",
                            "Map a product": "To do", "Send a test delivery": "To do"}
    shots(page, "20-getting-started")
    page.get_by_role("link", name="Publish a course").click()
    expect(page.get_by_role("heading", name="Courses")).to_be_visible()

    with app.app_context():
        course = factories.make_course()
        factories.make_level(name="Pro", courses=[course])
        integration = factories.make_integration(name="My ThriveCart")
        db.session.commit()
        integration_id = integration.id
    nav(page, "Dashboard").click()
    assert _steps(page) == {"Publish a course": "Done", "Make a level": "Done", "Connect a cart": "Done",
                            "Map a product": "To do", "Send a test delivery": "To do"}
    page.get_by_role("link", name="Map a product").click()
    assert page.url.endswith(f"/admin/integrations/{integration_id}#products-heading")
    page.get_by_label("Cart product id").fill("12")
    page.get_by_role("button", name="Configure this product").click()
    page.get_by_role("group", name="Levels for every pricing option").get_by_label("Pro").check()
    page.get_by_role("button", name="Save product").click()
    nav(page, "Dashboard").click()
    assert _steps(page)["Map a product"] == "Done"
    page.get_by_role("link", name="Send a test delivery").click()
    page.get_by_role("button", name="Send a test delivery").click()
    nav(page, "Dashboard").click()
    expect(page.get_by_role("region", name="Getting started")).to_have_count(0)  # all done: the list goes


def test_emptying_a_product_is_refused_and_stopping_it_is_asked_for(browser, live_server, app, owner, shots):
    from extensions import db
    from fulfillment import rules
    from tests import factories

    with app.app_context():
        course = factories.make_course()
        pro = factories.make_level(name="Pro", courses=[course])
        integration = factories.make_integration(name="My ThriveCart")
        factories.make_rule(integration, "77", [pro])
        db.session.commit()
        integration_id = integration.id

    def unlocks() -> list[str]:
        with app.app_context():
            return [lv.name for lv in rules.levels_for_item(db.session, integration_id, "product", "77", None)]

    page = new_page(browser, live_server)
    sign_in(page)
    page.goto(f"/admin/integrations/{integration_id}/products/77")
    page.get_by_role("group", name="Levels for every pricing option").get_by_label("Pro").uncheck()
    page.get_by_role("button", name="Save product").click()
    expect(page.get_by_role("alert")).to_contain_text("Nothing saved: product 77 would unlock no level.")
    expect(page.get_by_text("Product 77 saved")).to_have_count(0)
    assert unlocks() == ["Pro"]
    shots(page, "21-empty-mapping-refused")

    page.get_by_role("link", name="Stop fulfilling this product…").click()
    expect(page.get_by_role("heading", name="Stop fulfilling Product 77?")).to_be_visible()
    expect(page.get_by_text("product 77: unlocks Pro")).to_be_visible()
    assert unlocks() == ["Pro"]  # the page only asks
    page.get_by_role("button", name="Stop fulfilling this product").click()
    expect(page.get_by_role("status").filter(has_text="Product 77 is no longer fulfilled")).to_contain_text(
        "product 77 no longer unlocks Pro")
    assert unlocks() == []


def test_add_a_row_without_saving_and_only_the_carts_fields(browser, live_server, app, owner):
    from extensions import db
    from fulfillment import rules
    from tests import factories

    with app.app_context():
        factories.make_level(name="VIP Coaching", courses=[factories.make_course()])
        integration = factories.make_integration(name="My ThriveCart")
        db.session.commit()
        integration_id = integration.id
    context = browser.new_context(base_url=live_server, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    sign_in(page)
    page.goto(f"/admin/integrations/{integration_id}/funnel")
    upsells = page.get_by_role("table", name="Upsells")
    expect(upsells.get_by_role("row")).to_have_count(4)  # header + 3 empty rows
    page.get_by_role("button", name="Add a row to Upsells").click()
    expect(upsells.get_by_role("row")).to_have_count(5)
    page.get_by_label("Upsell id, row 4", exact=True).fill("9")
    page.get_by_role("group", name="Levels for upsell id, row 4").get_by_label("VIP Coaching").check()
    page.get_by_role("button", name="Save upsells and downsells").click()
    expect(page.get_by_text("upsell 9 unlocks VIP Coaching")).to_be_visible()
    with app.app_context():
        assert [lv.name for lv in rules.levels_for_item(db.session, integration_id, "upsell", "9", None)] == [
            "VIP Coaching"]

    page.goto(f"/admin/integrations/{integration_id}")
    expect(page.get_by_label("Stripe restricted API key")).to_have_count(0)
    page.goto("/admin/integrations/new")
    expect(page.get_by_label("Stripe restricted API key")).to_be_hidden()
    page.get_by_label("Cart", exact=True).select_option("stripe")
    expect(page.get_by_label("Stripe restricted API key")).to_be_visible()
    assert errors == []


def test_the_sidebar_breaks_a_long_email_only_between_its_parts(browser, live_server, app):
    from admin import auth
    from extensions import db

    email = "customer.success.department@longest-example-domain.example.com"
    with app.app_context():
        auth.create_owner(db.session, email, OWNER_PASSWORD)
        db.session.commit()
    page = new_page(browser, live_server)
    page.goto("/admin/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(OWNER_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/admin/$"))
    # Each line of the address after the first starts at "@" or "." (or after a hyphen): never inside a word.
    starts = page.locator("nav.side .who .email").evaluate("""(el) => {
        const out = []; let top = null; let prev = "";
        const walker = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
        while (walker.nextNode()) {
            const node = walker.currentNode;
            for (let i = 0; i < node.length; i++) {
                const range = document.createRange(); range.setStart(node, i); range.setEnd(node, i + 1);
                const rect = range.getClientRects()[0];
                if (!rect) continue;
                if (top !== null && rect.top > top + 2) out.push(prev + node.data[i]);
                prev = node.data[i];
                top = rect.top;
            }
        }
        return out;
    }""")
    assert starts, "the address fits on one line: the test needs a longer one"
    assert all(pair[1] in "@." or pair[0] == "-" for pair in starts), starts


def test_money_at_risk_in_the_browser(browser, live_server, app, owner, shots, books):
    from tests.billing.test_reports import NOW

    with timeutil.frozen(NOW):
        page = new_page(browser, live_server)
        sign_in(page)
        nav(page, "Money at risk").click()
        expect(page.get_by_role("heading", name="Money at risk")).to_be_visible()
        page.get_by_label("Months", exact=True).select_option("3")
        page.get_by_role("button", name="Show").click()
        table = page.get_by_role("table", name="Money at risk by month")
        expect(table.get_by_role("row")).to_have_count(4)
        expect(table.get_by_role("row").filter(has_text="2026-11")).to_contain_text("50.0%")
        assert page.locator("svg.chart").count() == 2
        shots(page, "18-money-at-risk")
