"""Golden files for every email: subject, text and HTML, by default and with the owner's own text.

A changed template shows up as a diff against tests/emails/snapshots/. After checking the new output
by eye, refresh the files with ``COURSEGATE_UPDATE_SNAPSHOTS=1 scripts/test tests/emails``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from emails import catalog, rendering
from emails.models import EmailTemplateOverride
from emails.placeholders import Link

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("COURSEGATE_UPDATE_SNAPSHOTS") == "1"

# One context per catalogued email, with characters that must be escaped in HTML.
CASES: dict[str, dict] = {
    "welcome": {"member_name": "Grace <Hopper>", "login_url": "http://coursegate.test/login/TOKEN",
                "levels": ["Gold", "Tips & Tricks"],
                "courses": [Link("Course <One>", "https://school.example.com/one?a=1&b=2"), Link("Offline Q&A")]},
    "access_added": {"member_name": "Grace <Hopper>", "levels": ["Tips & Tricks"],
                     "courses": [Link("Course <Two>", "https://school.example.com/two")],
                     "account_url": "http://coursegate.test/account"},
    "login_link": {"member_name": "Grace <Hopper>", "login_url": "http://coursegate.test/login/TOKEN"},
    "payment_failed": {"member_name": "Grace <Hopper>", "grace_days": 7, "levels": ["Gold"],
                       "card_update_url": "https://cart.example.com/hub?customer=1&plan=2"},
    "card_updated": {"member_name": "Grace <Hopper>", "brand": "Visa", "last4": "4242", "expiry": "08/2030",
                     "old_last4": "0005", "subscriptions": ["Gold Monthly", "Tips & Tricks"],
                     "changed_at": "21 November 2026, 09:30 UTC"},
    "invitation": {"member_name": "Grace <Hopper>", "update_url": "http://coursegate.test/card-update/TOKEN",
                   "expires_in_hours": 48, "card": "Visa ending 4242"},
    "automation_message": {"message_subject": "Your bonus is ready, Grace <Hopper>",
                           "message_body": "Hi Grace <Hopper>,\n\nYour bonus: http://coursegate.test/login/TOKEN"},
}

OWNER_TEXT = EmailTemplateOverride(
    template="welcome",
    subject="{member_name}, you're in at {site_name}!",
    body="Hi {member_name},\n\nYou now have: {levels}.\nYour <b>one-click</b> link: {login_url}\n\n"
         "Questions? Reply & we'll help. {{Not a placeholder}}",
)


def check_snapshot(name: str, actual: str) -> None:
    path = SNAPSHOTS / name
    if UPDATE:
        path.write_text(actual)
        return
    assert path.exists(), f"no golden file {path}; write it with COURSEGATE_UPDATE_SNAPSHOTS=1"
    assert actual == path.read_text(), f"{name} differs from its golden file"


# Emails whose golden files live with their domain's tests, rendered from real billing rows.
GOLDEN_ELSEWHERE = {
    name: "tests/billing/test_emails.py"
    for name in ("invoice_issued", "payment_receipt", "invoice_payment_failed", "invoice_action_required",
                 "subscription_unpaid", "subscription_cancelled")
}


def test_every_catalogued_email_has_a_golden_case():
    missing = set(catalog.CATALOG) - set(CASES) - set(GOLDEN_ELSEWHERE)
    assert not missing, f"add a context to CASES (and golden files) for: {', '.join(sorted(missing))}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_default_email_matches_its_golden_files(app_ctx, name):
    subject, text, html = rendering.render(name, CASES[name])
    check_snapshot(f"{name}.subject.txt", subject + "\n")
    check_snapshot(f"{name}.txt", text)
    check_snapshot(f"{name}.html", html)
    assert "Grace &lt;Hopper&gt;" in html and "<Hopper>" not in html


def test_owner_text_matches_its_golden_files(app_ctx):
    subject, text, html = rendering.render("welcome", CASES["welcome"], OWNER_TEXT)
    check_snapshot("welcome.owner.subject.txt", subject + "\n")
    check_snapshot("welcome.owner.txt", text)
    check_snapshot("welcome.owner.html", html)


def test_owner_text_is_escaped_in_html_and_linked(app_ctx):
    subject, text, html = rendering.render("welcome", CASES["welcome"], OWNER_TEXT)
    assert subject == "Grace <Hopper>, you're in at Test Academy!"
    assert "Your <b>one-click</b> link: http://coursegate.test/login/TOKEN" in text
    assert "{Not a placeholder}" in text and "Tips & Tricks" in text
    assert "&lt;b&gt;one-click&lt;/b&gt;" in html and "<b>" not in html
    assert '<a href="http://coursegate.test/login/TOKEN">http://coursegate.test/login/TOKEN</a>' in html
    assert "Tips &amp; Tricks" in html and "Grace &lt;Hopper&gt;" in html
    assert "<title>Grace &lt;Hopper&gt;, you&#39;re in at Test Academy!</title>" in html


def test_owner_text_is_never_run_as_jinja(app_ctx):
    sneaky = EmailTemplateOverride(template="welcome", subject="{{ config.SECRET_KEY }}",
                                   body="{{ config.SECRET_KEY }} {{% if true %}}x{{% endif %}} {login_url}")
    subject, text, html = rendering.render("welcome", CASES["welcome"], sneaky)
    assert subject == "{ config.SECRET_KEY }"
    assert "test-secret-key" not in text + html + subject
    assert "{ config.SECRET_KEY } {% if true %}x{% endif %}" in text


def test_a_member_name_cannot_break_the_subject_line(app_ctx):
    subject, _, _ = rendering.render("welcome", {**CASES["welcome"], "member_name": "Eve\r\nBcc: x@evil"},
                                     EmailTemplateOverride(template="welcome", subject="Hi {member_name}"))
    assert subject == "Hi Eve Bcc: x@evil"


def test_missing_context_is_a_programming_error(app_ctx):
    with pytest.raises(KeyError, match="login_url"):
        rendering.render("welcome", {"member_name": "x", "levels": []})
