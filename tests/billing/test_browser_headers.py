"""The member-facing pages under their Content-Security-Policy, in Debian's Chromium: the inline styles apply and
the policy blocks nothing."""

from __future__ import annotations

import pytest

from tests.admin.test_browser import CHROMIUM, CHROMIUM_ARGS, browser  # noqa: F401  (fixture)
from tests.billing.helpers import make_plan, path_of

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium"),
]


def test_sign_up_pages_render_with_their_styles_and_nothing_refused(browser, live_server, app):  # noqa: F811
    from extensions import db

    with app.app_context():
        plan_id = make_plan().id
        db.session.commit()
    context = browser.new_context(base_url=live_server, viewport={"width": 1024, "height": 800})
    page = context.new_page()
    page.set_default_timeout(10_000)
    refused: list[str] = []
    # Chromium reports what a policy blocks as a console error ("Refused to ... Content Security Policy").
    page.on("console", lambda message: refused.append(message.text)
            if message.type == "error" and "Content Security Policy" in message.text else None)
    page.on("pageerror", lambda error: refused.append(str(error)))
    for path in ("/login", f"/plans/{plan_id}"):
        response = page.goto(path)
        assert response.status == 200 and "frame-ancestors 'none'" in response.headers["content-security-policy"]
        # base.html's inline <style>: the page background and the button colour.
        assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(246, 247, 247)"
        assert page.evaluate("getComputedStyle(document.querySelector('button')).backgroundColor") \
            == "rgb(34, 113, 177)"
    # The sandbox's hosted card page (the sign-up redirects there through SITE_URL, which this browser cannot reach).
    signup = app.test_client().post(f"/plans/{plan_id}", data={"email": "ada@example.com", "agree": "yes"})
    page.goto(path_of(signup.headers["Location"]))
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(246, 247, 247)"
    assert page.get_by_role("button").first.is_visible()
    assert refused == []
    context.close()
