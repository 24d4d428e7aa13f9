"""The owner's tools in a real browser (Debian's headless Chromium, Playwright, the live server): editing a
member's profile, a bulk change over a search, and an automation built in the admin and fired by a tag, whose
webhook reaches a local HTTP server. ``scripts/admin-screenshots`` keeps their screenshots too."""

from __future__ import annotations

import http.server
import re
import threading
import time

import pytest

from tests.admin.test_browser import browser, nav, new_page, shots, sign_in, sync_api  # noqa: F401
from tests.admin.test_browser import pytestmark  # noqa: F401  (browser marker; skipped without Chromium)

expect = sync_api.expect
RECEIVER_PORTS = range(5680, 5690)  # this worktree's ports


class Receiver(http.server.BaseHTTPRequestHandler):
    """A CRM stand-in: records each POST; answers 500 to the first one and 200 after that."""

    received: list[dict] = []

    def do_POST(self):  # noqa: N802 - the http.server hook name
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.received.append({"body": body, "headers": dict(self.headers)})
        status = 500 if len(self.received) == 1 else 200
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"CRM is down for maintenance" if status == 500 else b"ok")

    def log_message(self, *args):  # keep the test output quiet
        pass


@pytest.fixture
def receiver():
    Receiver.received = []
    server = None
    for port in RECEIVER_PORTS:
        try:
            server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Receiver)
            break
        except OSError:
            continue
    assert server is not None, "no free port in 5680-5689 for the test webhook receiver"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks/coursegate", Receiver.received
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def wait_for(condition, seconds: float = 15) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def sent_or_swept(app, arrived) -> None:
    """Wait for a webhook the app sends after its response. The werkzeug test server sometimes drops those
    after-response jobs (it reads the socket once more before closing the response, and Chromium has reset the
    connection after a redirect), so after a few seconds run the periodic sweep, as ``scripts/serve`` does every
    minute and production does from beat or cron: the delivery row is the record, the job only the trigger."""
    try:
        wait_for(arrived, seconds=5)
    except AssertionError:
        from automations import webhooks

        with app.app_context():
            webhooks.sweep_due()
        wait_for(arrived)


def test_owner_edits_a_profile_and_sees_the_forms_errors(browser, live_server, app, owner, shots):  # noqa: F811
    from extensions import db
    from tests import factories

    with app.app_context():
        jane = factories.make_member(email="jane.student@example.com", name="Jane Student")
        jane.keap_contact_id = "4321"
        factories.make_member(email="sam.student@example.com", name="Sam Student")
        db.session.commit()
        jane_id = jane.id

    page = new_page(browser, live_server)
    sign_in(page)
    page.goto(f"/admin/members/{jane_id}")
    page.get_by_text("Edit profile").click()
    profile = page.get_by_role("form", name="Edit profile")
    expect(profile.get_by_text("Linked to Keap contact 4321: changing the email keeps this link.")).to_be_visible()

    # A phone without its country code, then a taken email: refused in the order the API refuses them.
    profile.get_by_label("Email").fill("Sam.Student@example.com")
    profile.get_by_label("Phone").fill("0415 555 123")
    profile.get_by_role("button", name="Save profile").click()
    profile = page.get_by_role("form", name="Edit profile")
    expect(page.get_by_role("alert")).to_contain_text("Please correct the fields marked below.")
    expect(profile.get_by_text("String does not match expected pattern.")).to_be_visible()
    expect(profile.get_by_label("Phone")).to_have_attribute("aria-invalid", "true")
    profile.get_by_label("Phone").fill("+61415555123")
    profile.get_by_role("button", name="Save profile").click()
    profile = page.get_by_role("form", name="Edit profile")
    expect(profile.get_by_text("Another member already uses sam.student@example.com")).to_be_visible()
    expect(profile.get_by_role("link", name="open their page")).to_be_visible()
    expect(profile.get_by_label("Email")).to_have_attribute("aria-invalid", "true")
    expect(profile.get_by_label("Email")).to_have_value("Sam.Student@example.com")  # what was typed stays
    shots(page, "18-member-edit-errors")

    profile.get_by_label("Email").fill("jane.new@example.com")
    profile.get_by_label("Phone").fill("+61415555123")
    profile.get_by_label("External source").fill("infusionsoft")
    profile.get_by_role("button", name="Save profile").click()
    expect(page.get_by_text("Profile saved: email, phone, external source.")).to_be_visible()
    expect(page.get_by_text("Email changed from jane.student@example.com to jane.new@example.com. Keap contact "
                            "4321 kept.")).to_be_visible()
    expect(page.get_by_role("heading", name="Jane Student")).to_be_visible()
    history = page.get_by_role("table", name="Profile changes of jane.new@example.com")
    email_row = history.get_by_role("row").filter(has_text="jane.student@example.com")
    expect(email_row).to_contain_text("Keap contact 4321 kept.")
    expect(email_row).to_contain_text("owner admin")
    expect(history.get_by_role("row").filter(has_text="external source")).to_contain_text("infusionsoft")
    shots(page, "19-member-history")


def test_owner_tags_every_member_matching_a_search(browser, live_server, app, owner, shots):  # noqa: F811
    from sqlalchemy import select

    from extensions import db
    from membership.tags import MemberTag, Tag
    from tests import factories

    with app.app_context():
        for n in range(60):
            factories.make_member(email=f"pupil{n:02d}@school.org", name=f"Pupil {n:02d}")
        for n in range(5):
            factories.make_member(email=f"parent{n}@home.example", name=f"Parent {n}")
        db.session.commit()

    page = new_page(browser, live_server)
    sign_in(page)
    nav(page, "Members").click()
    page.get_by_label("Search by email or name").fill("school.org")
    page.get_by_role("button", name="Search").click()
    # 60 match, over two pages: "select all" covers both, not only the 50 rows shown.
    page.get_by_label("Select all 60 members matching “school.org”").check()
    page.get_by_label("Action").select_option(label="Add tag")
    page.get_by_label("External source or tag").fill("Spring-2027")
    shots(page, "20-members-bulk")
    page.get_by_role("button", name="Review the change…").click()
    expect(page.get_by_role("heading", name="This will change 60 members")).to_be_visible()
    expect(page.get_by_text("Every member matching “school.org”")).to_be_visible()
    shots(page, "21-members-bulk-confirm")
    page.get_by_role("button", name="Apply to 60 members").click()
    expect(page.get_by_role("status").filter(has_text="Done")).to_contain_text(
        "60 matched, 60 changed, 0 unchanged.")
    expect(page.get_by_label("Search by email or name")).to_have_value("school.org")

    # Ticked rows: two pupils, one of whom carries the tag already.
    page.get_by_label("Select pupil59@school.org").check()
    page.get_by_label("Select pupil58@school.org").check()
    page.get_by_label("Action").select_option(label="Remove tag")
    page.get_by_label("External source or tag").fill("spring-2027")
    page.get_by_role("button", name="Review the change…").click()
    expect(page.get_by_role("heading", name="This will change 2 members")).to_be_visible()
    page.get_by_role("button", name="Apply to 2 members").click()
    expect(page.get_by_role("status").filter(has_text="Done")).to_contain_text("2 matched, 2 changed, 0 unchanged.")
    with app.app_context():
        tagged = set(db.session.scalars(select(MemberTag.member_id).join(Tag).where(Tag.name == "spring-2027")))
        assert len(tagged) == 58


def test_owner_builds_an_automation_and_a_tag_fires_its_webhook(browser, live_server, app, owner, shots,  # noqa: F811
                                                                receiver):
    from automations import webhooks
    from extensions import db
    from tests import factories

    url, received = receiver
    with app.app_context():
        member = factories.make_member(email="vip.student@example.com", name="Vip Student")
        db.session.commit()
        member_id = member.id

    # With JavaScript on (admin.js tidies the rule editor), and nothing refused by the CSP.
    context = browser.new_context(base_url=live_server, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors: list[str] = []
    # (A refused form answers 422, which Chromium logs as a failed resource: that one is expected.)
    page.on("console", lambda message: errors.append(message.text) if message.type == "error"
            and "status of 422" not in message.text else None)
    sign_in(page)

    # The CRM's endpoint; it subscribes to no tag event itself, so only the rule calls it.
    nav(page, "Automations").click()
    page.get_by_role("link", name="Add a webhook endpoint").click()
    page.get_by_label("URL").fill(url)
    page.get_by_label("Description").fill("Our CRM")
    page.get_by_label("Card updated").check()
    page.get_by_role("button", name="Add endpoint").click()
    secret = page.get_by_role("textbox", name="Signing secret").input_value()
    assert secret.startswith("cgwhsec_")

    # A rule that would loop (tag "vip" added -> add tag "vip") is refused with the loop spelled out.
    nav(page, "Automations").click()
    page.get_by_role("link", name="New rule").click()
    page.get_by_label("Name").fill("VIP: tell the CRM")
    page.get_by_label("Event").select_option(label="Tag added")
    page.get_by_label("Only for tag").fill("vip")
    step1 = page.get_by_role("group", name="Then, step 1")
    step1.get_by_label("Then").select_option(label="Add a tag")
    expect(step1.get_by_label("Email")).to_be_hidden()  # admin.js shows only the step's own fields
    step1.get_by_label("Tag").fill("vip")
    page.get_by_role("button", name="Create rule").click()
    expect(page.get_by_role("alert")).to_contain_text("This rule would loop: rule 'VIP: tell the CRM' adds tag 'vip'")

    step1 = page.get_by_role("group", name="Then, step 1")
    step1.get_by_label("Then").select_option(label="Call a webhook")
    step1.get_by_label("Webhook endpoint").select_option(label=url)
    step2 = page.get_by_role("group", name="Then, step 2")
    step2.get_by_label("Then").select_option(label="Send an email")
    step2.get_by_label("Email").select_option(value="automation_message")
    step2.get_by_label("Subject").fill("Welcome to VIP, {member_name}")
    step2.get_by_label("Message").fill("Your VIP coaching starts next week.")
    shots(page, "22-automation-rule")
    page.get_by_role("button", name="Create rule").click()
    expect(page.get_by_text("Rule “VIP: tell the CRM” created.")).to_be_visible()

    # The tag, added on the member's page, runs the rule: the CRM is called, signed with the secret.
    page.goto(f"/admin/members/{member_id}")
    page.get_by_label("Tag", exact=True).fill("VIP")
    page.get_by_role("button", name="Add tag").click()
    expect(page.get_by_text("Tagged vip.student@example.com with “vip”.")).to_be_visible()
    sent_or_swept(app, lambda: len(received) >= 1)
    assert len(received) == 1
    first = received[0]
    assert webhooks.verify(secret, first["headers"]["X-Coursegate-Signature"], first["body"])
    assert b'"email":"vip.student@example.com"' in first["body"] and first["headers"]["X-Coursegate-Event"] == \
        "tag_added"

    # The rule's run, and the delivery with the CRM's answer (a 500); resend it and it goes through.
    nav(page, "Automations").click()
    runs = page.get_by_role("table", name="Automation runs")
    expect(runs.get_by_role("row").filter(has_text="VIP: tell the CRM")).to_contain_text("succeeded")
    page.get_by_role("link", name=url).click()
    deliveries = page.get_by_role("table", name=f"Deliveries to {url}")
    expect(deliveries).to_contain_text("HTTP 500: CRM is down for maintenance")
    deliveries.get_by_role("link", name=re.compile(r"^#\d+$")).first.click()
    attempts = page.get_by_role("table", name=re.compile("Attempts of delivery"))
    expect(attempts).to_contain_text("HTTP 500: CRM is down for maintenance")
    expect(page.get_by_role("region", name="Body, as signed and sent")).to_contain_text('"type": "tag_added"')
    page.get_by_role("button", name="Resend this delivery").click()
    expect(page.get_by_text(re.compile(r"Delivery #\d+ resent as delivery #\d+\."))).to_be_visible()
    sent_or_swept(app, lambda: len(received) >= 2)
    assert len(received) == 2
    assert received[1]["body"] == first["body"]  # the same body, so the CRM can drop a duplicate by its id
    page.reload()
    expect(page.get_by_text("delivered", exact=True)).to_be_visible()
    expect(page.get_by_role("table", name=re.compile("Attempts of delivery"))).to_contain_text("200")
    shots(page, "23-webhook-delivery")

    with app.app_context():
        from emails.models import OutboundEmail
        email = db.session.query(OutboundEmail).filter_by(recipient="vip.student@example.com").one()
        assert email.subject == "Welcome to VIP, Vip Student"

    # Switch the rule off from the list; the list says so.
    nav(page, "Automations").click()
    page.get_by_role("button", name="Disable “VIP: tell the CRM”").click()
    expect(page.get_by_text("Rule “VIP: tell the CRM” disabled.")).to_be_visible()
    shots(page, "24-automations")
    assert errors == []


def test_the_invoice_names_the_level_it_renews(browser, live_server, app, owner, shots):  # noqa: F811
    from billing.models import Plan
    from extensions import db
    from tests import factories

    with app.app_context():
        plan = Plan(name="Pro monthly", level=factories.make_level(name="Pro Coaching"), amount=4900,
                    currency="usd", interval_unit="month", interval_count=1)
        db.session.add(plan)
        db.session.commit()
        plan_id = plan.id

    # The customer signs up through the real pages and lands on their first invoice (the pages redirect to
    # absolute links, so the site's address is the live server's here).
    app.config["SITE_URL"] = live_server
    customer = new_page(browser, live_server)
    customer.goto(f"/plans/{plan_id}")
    customer.get_by_label("Email").fill("ada@example.com")
    customer.get_by_label("I agree to the authorisation above").check()
    customer.get_by_role("button", name="Continue to card details").click()
    customer.get_by_label("Card number").fill("4242 4242 4242 4242")
    customer.get_by_label("Expiry (MM/YY)").fill("12/34")
    customer.get_by_label("Security code").fill("123")
    customer.get_by_role("button", name="Authorise card").click()
    customer.wait_for_url(re.compile(r"/invoices/\d+"))
    expect(customer.get_by_role("row", name=re.compile("Renews access to"))).to_contain_text("Pro Coaching")
    shots(customer, "25-invoice")
    invoice_id = int(re.search(r"/invoices/(\d+)", customer.url).group(1))

    page = new_page(browser, live_server)
    sign_in(page)
    page.goto(f"/admin/invoices/{invoice_id}")
    expect(page.get_by_text("Renews level")).to_be_visible()
    expect(page.locator("dl.facts")).to_contain_text("Pro Coaching")
