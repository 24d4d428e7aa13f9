"""/account and GET /api/v1/me: the same facts, only ever the signed-in member's own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import timeutil
from membership import services
from membership.models import GrantStatus
from tests import factories
from tests.helpers import committed
from membership import grants

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@pytest.fixture
def world(app):
    """Ada: Gold (active, ends in 30 days), Silver (past due from a cart), Bronze (revoked). Bob: Platinum."""
    with timeutil.frozen(NOW), committed(app) as session:
        painting = factories.make_course(title="Painting Basics")
        draft = factories.make_course(title="Secret Draft", status="draft")
        gold = factories.make_level(name="Gold", slug="gold", courses=[painting, draft])
        silver = factories.make_level(name="Silver", slug="silver",
                                      courses=[factories.make_course(title="Silver Course")])
        bronze = factories.make_level(name="Bronze", slug="bronze",
                                      courses=[factories.make_course(title="Bronze Course")])
        platinum = factories.make_level(name="Platinum", slug="platinum",
                                        courses=[factories.make_course(title="Platinum Course")])
        cart = factories.make_integration(card_update_url="https://cart.example.com/hub?customer=1")
        ada = factories.make_member(email="ada@example.com", name="Ada")
        bob = factories.make_member(email="bob@example.com", name="Bob")
        factories.grant(ada, gold, ends_at=NOW + timedelta(days=30))
        late = factories.grant(ada, silver, source_kind="order", integration_id=cart.id, order_ref="o-1",
                               line_ref="product-1")
        late.status = GrantStatus.PAST_DUE
        late.past_due_since = NOW - timedelta(days=1)
        late.revoke_at = NOW + timedelta(days=6)
        gone = factories.grant(ada, bronze, starts_at=NOW - timedelta(days=40))
        grants.revoke(session, [gone], "refund", at=NOW - timedelta(days=3))
        factories.grant(bob, platinum)
        ids = {"ada": ada.id, "bob": bob.id}
    return ids


def as_member(client, member_id):
    with client.session_transaction() as browser:
        browser["member_id"] = member_id
    return client


def test_account_page_shows_the_members_levels_courses_and_dates(client, world):
    with timeutil.frozen(NOW):
        page = as_member(client, world["ada"]).get("/account")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert '<meta name="viewport"' in body  # usable on a phone
    assert "Gold" in body and "Painting Basics" in body and "access until" in body
    assert '<time datetime="2026-04-01T12:00:00+00:00">1 April 2026</time>' in body
    assert "Secret Draft" not in body  # draft courses are not shown to members


def test_account_page_warns_about_a_past_due_grant_with_the_card_update_link(client, world):
    with timeutil.frozen(NOW):
        body = as_member(client, world["ada"]).get("/account").get_data(as_text=True)
    assert 'role="alert"' in body and "Your payment for Silver did not go through" in body
    assert 'href="https://cart.example.com/hub?customer=1"' in body
    assert "Silver Course" in body and "(payment due)" in body  # access continues during the grace period
    assert "8 March 2026" in body


def test_account_page_shows_a_revoked_level_as_past_without_its_courses(client, world):
    with timeutil.frozen(NOW):
        body = as_member(client, world["ada"]).get("/account").get_data(as_text=True)
    past = body.split("Past access", 1)[1]
    assert "Bronze" in past and "27 February 2026" in past
    assert "Bronze Course" not in body


def test_no_member_sees_another_members_data(client, world):
    with timeutil.frozen(NOW):
        ada = as_member(client, world["ada"]).get("/account").get_data(as_text=True)
        bob = as_member(client, world["bob"]).get("/account").get_data(as_text=True)
        bob_me = client.get("/api/v1/me").json
    assert "Platinum" not in ada and "bob@example.com" not in ada
    for text in ("Gold", "Silver", "Bronze", "Painting Basics", "ada@example.com", "cart.example.com"):
        assert text not in bob
    assert bob_me["member"]["email"] == "bob@example.com"
    assert [level["slug"] for level in bob_me["levels"]] == ["platinum"]
    assert bob_me["notices"] == [] and bob_me["past_levels"] == []


def test_me_has_the_same_facts_as_json(client, world):
    with timeutil.frozen(NOW):
        response = as_member(client, world["ada"]).get("/api/v1/me")
    assert response.status_code == 200
    me = response.json
    assert me["member"] == {"id": world["ada"], "email": "ada@example.com", "name": "Ada", "has_password": False}
    gold, silver = me["levels"]
    assert gold["slug"] == "gold" and gold["status"] == "active"
    assert gold["ends_at"] == "2026-04-01T12:00:00+00:00"
    assert [course["title"] for course in gold["courses"]] == ["Painting Basics"]
    assert silver["slug"] == "silver" and silver["status"] == "past_due"
    assert me["notices"] == [{"code": "past_due", "level": "silver", "since": "2026-03-01T12:00:00+00:00",
                              "access_ends_at": "2026-03-08T12:00:00+00:00",
                              "card_update_url": "https://cart.example.com/hub?customer=1"}]
    assert me["past_levels"] == [{"slug": "bronze", "name": "Bronze", "status": "revoked",
                                  "ended_at": "2026-02-27T12:00:00+00:00"}]


def test_me_without_a_session_is_a_401_json(client, api):
    response = client.get("/api/v1/me")
    assert response.status_code == 401 and response.json["code"] == "not_signed_in"
    # an owner key is not a member session
    assert api.get("/api/v1/me").status_code == 401


def test_me_for_a_deleted_member_is_a_401(app, client, world):
    with committed(app) as session:
        session.delete(session.get(services.Member, world["bob"]))
    as_member(client, world["bob"])
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/account").location == "/login"


def test_me_is_documented_with_the_session_cookie(client):
    spec = client.get("/api/v1/openapi.json").json
    operation = spec["paths"]["/api/v1/me"]["get"]
    assert operation["security"] == [{"memberSession": []}]
    assert spec["components"]["securitySchemes"]["memberSession"]["in"] == "cookie"


def test_other_domains_can_add_a_section_and_a_card_update_link(app, client, world, monkeypatch):
    from markupsafe import Markup

    from membership import account

    monkeypatch.setitem(app.extensions, account.ACCOUNT_SECTIONS, {})
    monkeypatch.setitem(app.extensions, account.CARD_UPDATE_URLS, {})
    account.register_account_section(app, "billing", lambda session, member: Markup(
        f"<section><h2>Subscriptions</h2><p>{member.email}</p></section>"))
    account.register_card_update_url(app, "billing", lambda session, grant: "https://billing.example.com/card")
    with timeutil.frozen(NOW):
        body = as_member(client, world["ada"]).get("/account").get_data(as_text=True)
        me = client.get("/api/v1/me").json
    assert "<h2>Subscriptions</h2><p>ada@example.com</p>" in body
    assert 'href="https://billing.example.com/card"' in body
    assert me["notices"][0]["card_update_url"] == "https://billing.example.com/card"


def test_past_due_notice_without_a_known_card_link_still_tells_the_member(app, client, world, monkeypatch):
    from membership import account

    monkeypatch.setitem(app.extensions, account.CARD_UPDATE_URLS, {})
    with timeutil.frozen(NOW):
        body = as_member(client, world["ada"]).get("/account").get_data(as_text=True)
    assert "did not go through" in body and "update your card with the store you bought from" in body


def test_personal_pages_are_never_cached(client, world):
    as_member(client, world["ada"])
    for path in ("/account", "/api/v1/me"):
        assert client.get(path).headers["Cache-Control"] == "private, no-store"
    assert client.get("/login/some-token").headers["Referrer-Policy"] == "same-origin"
