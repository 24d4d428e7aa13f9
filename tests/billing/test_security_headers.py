"""Every page a customer sees carries the security headers (Flask-Talisman) and is never cached; the Keap card
page allows exactly the component it loads."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

import security
from billing.models import Mandate
from extensions import db
from keap.pages import EMBED_SCRIPT
from tests.billing.helpers import CARDS, make_plan, path_of


def assert_secure_headers(response, where: str) -> None:
    headers = response.headers
    policy = headers.get("Content-Security-Policy", "")
    assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy, where
    assert "script-src 'self'" in policy and "object-src 'none'" in policy, where
    assert headers.get("X-Frame-Options") == "DENY", where
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert headers.get("Referrer-Policy") == "same-origin", where
    assert "no-store" in headers.get("Cache-Control", ""), where


def test_the_sign_up_walk_and_the_member_pages_carry_the_headers(client, app_ctx):
    plan = make_plan()
    seen = {}
    seen["plan page"] = client.get(f"/plans/{plan.id}")
    response = client.post(f"/plans/{plan.id}", data={"email": "ada@example.com", "name": "Ada", "agree": "yes"})
    seen["plan sign-up redirect"] = response
    checkout = path_of(response.headers["Location"])
    seen["sandbox card page"] = client.get(checkout)
    response = client.post(checkout, data={"cardnumber": CARDS["success"], "exp": "12/34", "cvc": "123"})
    response = client.get(path_of(response.headers["Location"]))
    invoice = path_of(response.headers["Location"])
    seen["invoice page"] = client.get(invoice)
    member_id = db.session.scalars(select(Mandate.member_id).order_by(Mandate.id.desc())).first()
    with client.session_transaction() as browser:
        browser["member_id"] = member_id
    for path in ("/subscriptions", "/account", "/account/billing", "/login", "/", "/login/not-a-token"):
        seen[path] = client.get(path)
    seen["a 404 page"] = client.get("/no-such-page")
    for where, response in seen.items():
        assert response.status_code in (200, 302, 400, 404, 410), (where, response.status_code)
        assert_secure_headers(response, where)
    assert seen["invoice page"].status_code == 200 and urlsplit(invoice).path.startswith("/invoices/")


def test_the_api_answers_are_not_cached_and_not_sniffed(api):
    response = api.get("/api/v1/members")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_static_files_may_be_cached(client):
    with client.get("/admin/static/admin.js") as response:
        assert response.status_code == 200 and "no-store" not in response.headers.get("Cache-Control", "")


def test_no_template_runs_an_inline_script():
    """script-src 'self' refuses inline scripts and event handlers: none may creep into a template."""
    offenders = []
    for template in Path(security.__file__).parent.joinpath("templates").rglob("*.html"):
        if "emails" in template.parts:  # emails are not pages (and run no script in a mail client)
            continue
        text = template.read_text()
        if re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text) or re.search(r"\son[a-z]+\s*=", text) \
                or "javascript:" in text:
            offenders.append(template.name)
    assert offenders == []


def test_the_keap_card_page_allows_only_the_component_it_loads():
    policy = security.policy_for("keap_pages.card")
    host = "{0.scheme}://{0.netloc}".format(urlsplit(EMBED_SCRIPT))
    assert host in policy["script-src"] and policy["frame-ancestors"] == "'none'"
    assert host not in security.policy_for("member_pages.account")["script-src"]
    assert security.policy_for("admin.dashboard")["form-action"] == "'self'"


@pytest.mark.parametrize("force_https, expected", [(False, 200), (True, 302)])
def test_the_https_redirect_is_off_unless_configured(make_app, force_https, expected):
    app = make_app(FORCE_HTTPS=force_https)
    client = app.test_client()
    response = client.get("/login")
    assert response.status_code == expected
    if force_https:
        assert response.headers["Location"].startswith("https://")
        secure = client.get("/login", base_url="https://localhost")
        assert secure.status_code == 200 and "max-age=" in secure.headers["Strict-Transport-Security"]
    # Probes keep answering on plain HTTP either way.
    assert client.get("/healthz").status_code == 200


def test_each_page_is_sent_its_own_policy_request_after_request(client):
    # The headers are worked out once per endpoint and policy (security._Talisman): they must not leak across.
    for _ in range(3):
        admin = client.get("/admin/login").headers["Content-Security-Policy"]
        member = client.get("/login").headers["Content-Security-Policy"]
        assert "form-action 'self'" in admin and "form-action" not in member
        assert "frame-ancestors 'none'" in admin and "frame-ancestors 'none'" in member
