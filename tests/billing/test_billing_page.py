"""The member's billing page and GET /api/v1/me/subscriptions: ours and Keap's side by side."""

from __future__ import annotations

import pytest
import requests

import timeutil
from extensions import db
from tests.billing.cardkit import T0, member_by_email, sign_in, subscribe
from tests.factories import make_member
from tests.keap import keapdata as kd


@pytest.fixture
def app_config(app_config):
    return {**app_config, "KEAP_API_KEY": kd.API_KEY, "KEAP_RATE_PER_SECOND": 1000, "KEAP_RATE_BURST": 1000,
            "KEAP_BACKOFF_BASE": 0.5, "KEAP_MAX_RETRIES": 2}


@pytest.fixture(autouse=True)
def sleeps(monkeypatch):
    waited: list[float] = []
    monkeypatch.setattr("keap.client._sleep", waited.append)
    return waited


@pytest.fixture
def clock(app_ctx):
    with timeutil.frozen(T0) as moment:
        yield moment


def _own_member(client, email="ada@example.com", plans=1, external_source=None):
    mandates = subscribe(client, email, plans)
    member = member_by_email(email)
    member.external_source = external_source
    db.session.commit()
    sign_in(client, member.id)
    return member, mandates


def _keap_member(client, email="jane@example.com", external_source="Infusionsoft"):
    member = make_member(email=email, name="Jane", external_source=external_source)
    db.session.commit()
    sign_in(client, member.id)
    return member


def test_page_for_a_member_with_our_subscriptions_only(client, clock, mocked_responses):
    member, (mandate,) = _own_member(client)
    page = client.get("/account/billing")
    assert page.status_code == 200
    html = page.text
    assert "Plan 1" in html and "10.00 USD every month" in html
    assert "2026-01-10" in html and "2026-02-10" in html  # started at, renews on
    assert "Visa ending 4242, expires 12/2034" in html
    assert f'href="/account/billing/cards/{mandate.payment_method_id}">Edit card' in html
    assert "could not be loaded" not in html and "no active subscriptions" not in html
    assert len(mocked_responses.calls) == 0  # not a Keap customer: Keap is never asked


def test_page_for_a_keap_member_only(client, app_ctx, mocked_responses):
    _keap_member(client)
    kd.standard_member_setup(mocked_responses, "jane@example.com")
    html = client.get("/account/billing").text
    assert "Premium Widget" in html and "49.00 USD every month" in html and "2024-06-21" in html
    assert "Visa ending 4242, expires 07/2030" in html
    assert 'href="/account/billing/keap/9001/card">Edit card' in html
    assert "no active subscriptions" not in html


def test_page_and_api_for_a_member_with_both(client, clock, mocked_responses):
    member, (mandate,) = _own_member(client, email="jane@example.com", external_source="KEAP")
    kd.standard_member_setup(mocked_responses, "jane@example.com")
    html = client.get("/account/billing").text
    assert "Plan 1" in html and "Premium Widget" in html
    body = client.get("/api/v1/me/subscriptions").json
    assert [(r["source"], r["product_name"]) for r in body["subscriptions"]] == [
        ("own", "Plan 1"), ("keap", "Premium Widget")]
    own, keap = body["subscriptions"]
    assert own["amount"] == "10.00" and own["currency"] == "USD" and own["interval_unit"] == "month"
    assert own["card"] == {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2034}
    assert own["started_at"] == "2026-01-10" and own["renews_on"] == "2026-02-10"
    assert own["edit_card_url"] == f"/account/billing/cards/{mandate.payment_method_id}"
    assert keap["edit_card_url"] == "/account/billing/keap/9001/card" and keap["card"]["last4"] == "4242"
    assert body["sources"] == [{"source": "own", "status": "ok", "message": None},
                               {"source": "keap", "status": "ok", "message": None}]


def test_page_for_a_member_with_neither(client, app_ctx, mocked_responses):
    _keap_member(client, external_source=None)
    html = client.get("/account/billing").text
    assert "You have no active subscriptions." in html and "<table" not in html
    assert client.get("/api/v1/me/subscriptions").json == {
        "subscriptions": [], "sources": [{"source": "own", "status": "ok", "message": None}]}


def test_cancelled_mandates_are_not_listed(client, clock, mocked_responses):
    member, (mandate,) = _own_member(client)
    client.post(f"/subscriptions/{mandate.id}/cancel")
    assert "You have no active subscriptions." in client.get("/account/billing").text


@pytest.mark.parametrize("failure", ["down", "slow", "rate_limited"])
def test_keap_failing_still_shows_ours_and_says_so_plainly(client, clock, mocked_responses, sleeps, failure):
    _own_member(client, email="jane@example.com", external_source="infusionsoft")
    for _ in range(3 if failure != "slow" else 1):
        if failure == "down":
            mocked_responses.get(f"{kd.BASE}/contacts", status=503, json=kd.error(503, "down", "UNAVAILABLE"))
        elif failure == "slow":
            mocked_responses.get(f"{kd.BASE}/contacts", body=requests.ReadTimeout("read timed out"))
        else:
            mocked_responses.get(f"{kd.BASE}/contacts", status=429, json=kd.THROTTLED)
    page = client.get("/account/billing")
    assert page.status_code == 200
    assert "Plan 1" in page.text and "Visa ending 4242" in page.text
    assert "could not be loaded right now" in page.text
    body = client.get("/api/v1/me/subscriptions").json  # the failure is remembered briefly: no new calls
    assert [r["source"] for r in body["subscriptions"]] == ["own"]
    assert body["sources"][1]["status"] == "unavailable" and "could not be loaded" in body["sources"][1]["message"]
    if failure == "rate_limited":
        assert sleeps  # it backed off before giving up


def test_email_changed_after_matching_keeps_the_keap_rows(client, api, app_ctx, mocked_responses):
    member = _keap_member(client, email="old@example.com")
    kd.standard_member_setup(mocked_responses, "old@example.com")
    assert "Premium Widget" in client.get("/account/billing").text
    assert api.patch(f"/api/v1/members/{member.id}", json={"email": "new@example.com"}).status_code == 200
    kd.on_contacts(mocked_responses, "new@example.com", [])  # Keap does not know the new address
    kd.on_subscriptions(mocked_responses, "101", [kd.subscription("9001", "101")])
    kd.on_payment_methods(mocked_responses, "101", [kd.payment_method("pm-old", "101")])
    kd.on_product(mocked_responses, "789", "Premium Widget")
    html = client.get("/account/billing").text
    assert "Premium Widget" in html and "Visa ending 4242" in html


def test_signed_out(client, app_ctx):
    response = client.get("/api/v1/me/subscriptions")
    assert response.status_code == 401 and response.json["code"] == "not_signed_in"
    page = client.get("/account/billing")
    assert page.status_code == 302 and page.headers["Location"].endswith("/login")


def test_account_page_links_to_the_billing_page(client, app_ctx):
    _keap_member(client, external_source=None)
    html = client.get("/account").text
    assert 'href="/account/billing"' in html
