"""Keap (Infusionsoft) as the cart and CRM: a campaign's "Send HTTP Post" enrols, revokes and tags."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

import timeutil
from automations.models import AutomationRun
from extensions import db
from fulfillment.models import WebhookEvent
from keap import subscriptions
from keap.models import KeapContactLink
from membership.models import Member
from membership.tags import MemberTag
from tests.factories import grant, make_course, make_integration, make_level, make_member
from tests.fulfillment.helpers import emails, event, event_count, grants, members
from tests.keap import keapdata as kd

KEY = "keap-url-key-123"


@pytest.fixture
def app_config(app_config):
    return {**app_config, "KEAP_API_KEY": kd.API_KEY, "KEAP_RATE_PER_SECOND": 1000, "KEAP_RATE_BURST": 1000}


@pytest.fixture
def keap(session):
    course = make_course(slug="keap-course")
    levels = {slug: make_level(name=slug.title(), slug=slug, courses=[course]) for slug in ("pro", "bonus")}
    levels["trial"] = make_level(name="Trial", slug="trial", courses=[course], duration_days=14)
    integration = make_integration(kind="keap", secret=KEY, name="Keap")
    session.commit()
    return SimpleNamespace(integration=integration, id=integration.id, levels=levels)


def legacy_contact(**changes) -> dict:
    """What a legacy action set posts: the whole contact record, and the owner's pairs."""
    record = {
        "Id": "4321", "Email": "Jane.Buyer@Example.com", "FirstName": "Jane", "LastName": "Buyer",
        "Company": "Buyer Ltd", "Phone1": "555-0100", "StreetAddress1": "1 Main St", "City": "Springfield",
        "State": "IL", "PostalCode": "62701", "Country": "United States", "Groups": "91,93", "LeadSource": "Web",
        "ContactType": "Customer", "DateCreated": "2026-11-20 08:15:00", "OwnerID": "1", "_CustomField": "x",
        "level": "pro",
    }
    record.update(changes)
    return record


def campaign(**pairs) -> dict:
    """A Campaign Builder step: only the pairs typed in, merge fields filled by Keap."""
    return {"Email": "jane.buyer@example.com", "contactId": "4321", "FirstName": "Jane", "LastName": "Buyer",
            **pairs}


def post(client, integration_id, fields: dict, *, key: str | None = KEY, as_json: bool = False, in_body=False):
    query = "" if key is None or in_body else "?" + urlencode({"key": key})
    if in_body and key is not None:
        fields = {**fields, "key": key}
    url = f"/webhooks/keap/{integration_id}{query}"
    if as_json:
        return client.post(url, data=json.dumps(fields), content_type="application/json")
    return client.post(url, data=urlencode(fields), content_type="application/x-www-form-urlencoded")


def tags_of(session, member_id) -> list[str]:
    session.expire_all()
    return sorted(t.tag.name for t in session.scalars(select(MemberTag).where(MemberTag.member_id == member_id)))


def access(member_id) -> dict[str, str]:
    db.session.expire_all()
    return {g.level.slug: g.status for g in grants(member_id=member_id)}


# --- enrol ------------------------------------------------------------------------------------------

def test_legacy_action_set_enrols_a_new_member_once(client, keap, session):
    response = post(client, keap.id, legacy_contact())
    assert response.status_code == 200 and response.json["status"] == "processed", response.json
    [member] = members()
    assert member.email == "jane.buyer@example.com" and member.name == "Jane Buyer"
    assert member.keap_contact_id == "4321" and member.external_source == "infusionsoft"
    [g] = grants()
    assert (g.level.slug, g.status, g.integration_id, g.order_ref, g.line_ref) == (
        "pro", "active", keap.id, "keap:4321", "level:pro")
    [welcome] = emails("welcome")
    assert welcome.recipient == "jane.buyer@example.com" and "Pro" in welcome.text_body

    # Keap posts the same step again: 200, nothing changes, and the owner can see why.
    again = post(client, keap.id, legacy_contact())
    assert again.status_code == 200 and again.json["status"] == "processed"
    assert "Nothing changed" in event(again.json["event_id"]).last_error
    assert len(grants()) == 1 and len(emails("welcome")) == 1 and len(members()) == 1


def test_campaign_builder_pairs_in_any_casing_with_extra_pairs(client, keap, session):
    fields = {"EMAIL": "Jane.Buyer@example.com", "ContactId": "4321", "firstname": "Jane", "LASTNAME": "Buyer",
              "Action": "Enroll", "Level": "pro, bonus", "utm_source": "newsletter", "OrderNotes": "thanks!"}
    response = post(client, keap.id, fields, in_body=True)
    assert response.json["status"] == "processed", response.json
    [member] = members()
    assert member.keap_contact_id == "4321" and member.name == "Jane Buyer"
    assert access(member.id) == {"pro": "active", "bonus": "active"}
    # The stored body is the post minus its key.
    stored = event(response.json["event_id"])
    assert KEY not in stored.body and "utm_source=newsletter" in stored.body
    assert stored.provider == "keap" and stored.event_type == "keap.enroll" and stored.customer_ref == "4321"

    # Repeats of the same step, in JSON and with another casing: still one grant per level.
    for body in (fields, {**fields, "ContactId": "~Contact.Id~", "contact0Id": "4321"}):
        assert post(client, keap.id, body, as_json=True).json["status"] == "processed"
    assert len(grants()) == 2 and len(emails("welcome")) == 1


def test_contact0_fields_and_unfilled_merge_fields(client, keap, session):
    fields = {"Contact0Email": "lee@example.com", "Contact0Id": "77", "Contact0FirstName": "Lee",
              "Contact0LastName": "~Contact.LastName~", "level": "pro"}
    assert post(client, keap.id, fields).json["status"] == "processed"
    [member] = members()
    assert (member.email, member.name, member.keap_contact_id) == ("lee@example.com", "Lee", "77")


def test_existing_member_gains_the_level_without_a_welcome_email(client, keap, session):
    member = make_member(email="jane.buyer@example.com", name="Jane")
    session.commit()
    response = post(client, keap.id, campaign(level="pro"))
    assert response.json["status"] == "processed"
    assert access(member.id) == {"pro": "active"}
    assert emails("welcome") == [] and len(members()) == 1


def test_days_make_a_time_limited_grant_and_levels_keep_their_own_duration(client, keap, session):
    moment = datetime(2030, 1, 10, 9, 0, tzinfo=UTC)
    with timeutil.frozen(moment):
        post(client, keap.id, campaign(level="pro", days="30"))
        post(client, keap.id, campaign(level="trial"))
    db.session.expire_all()
    ends = {g.level.slug: g.ends_at for g in grants()}
    assert ends == {"pro": moment + timedelta(days=30), "trial": moment + timedelta(days=14)}
    bad = post(client, keap.id, campaign(level="bonus", days="a month"))
    assert bad.json["status"] == "needs_attention" and "days" in event(bad.json["event_id"]).last_error


def test_enrolment_fires_order_completed_automations(client, keap, api, session):
    rule = api.post("/api/v1/automations", json={
        "name": "Keap pro buyers are VIPs", "trigger": "order_completed", "level_id": keap.levels["pro"].id,
        "actions": [{"type": "add_tag", "tag": "vip"}]})
    assert rule.status_code == 201, rule.json
    post(client, keap.id, campaign(level="pro"))
    post(client, keap.id, campaign(level="pro"))
    [member] = members()
    assert tags_of(session, member.id) == ["vip"]
    assert len(session.scalars(select(AutomationRun)).all()) == 1


def test_revoked_enrolment_posted_again_opens_access_again(client, keap, session):
    post(client, keap.id, campaign(level="pro"))
    post(client, keap.id, campaign(action="revoke", level="pro"))
    [member] = members()
    assert access(member.id) == {"pro": "revoked"}
    again = post(client, keap.id, campaign(level="pro"))
    assert again.json["status"] == "processed" and event(again.json["event_id"]).last_error is None
    assert access(member.id) == {"pro": "active"} and len(grants()) == 1


# --- revoke -----------------------------------------------------------------------------------------

def test_revoke_leaves_access_from_other_sources(client, keap, session):
    member = make_member(email="jane.buyer@example.com")
    manual = grant(member, keap.levels["pro"])
    other = make_integration(kind="thrivecart", secret="OTHERSECRET")
    from_cart = grant(member, keap.levels["bonus"], source_kind="order", integration_id=other.id, order_ref="9",
                      line_ref="product-1")
    session.commit()
    post(client, keap.id, campaign(level="pro,bonus"))
    response = post(client, keap.id, campaign(action="REVOKE", level="pro,bonus"))
    assert response.json["status"] == "processed"
    db.session.expire_all()
    by_source = {(g.integration_id, g.level.slug): (g.status, g.revoke_reason) for g in grants()}
    assert by_source == {(None, "pro"): ("active", None), (other.id, "bonus"): ("active", None),
                         (keap.id, "pro"): ("revoked", "keap_revoke"),
                         (keap.id, "bonus"): ("revoked", "keap_revoke")}
    assert manual.id and from_cart.id
    # Revoking again, or for someone unknown, changes nothing.
    again = post(client, keap.id, campaign(action="revoke", level="pro"))
    assert again.json["status"] == "processed" and "Nothing changed" in event(again.json["event_id"]).last_error
    unknown = post(client, keap.id, campaign(Email="nobody@example.com", action="revoke", level="pro"))
    assert unknown.json["status"] == "processed" and len(members()) == 1


# --- tags -------------------------------------------------------------------------------------------

def test_tag_and_untag_drive_automations(client, keap, api, session):
    rule = api.post("/api/v1/automations", json={
        "name": "Tagged paid-pro in Keap gets Pro", "trigger": "tag_added", "tag": "paid-pro",
        "actions": [{"type": "grant_level", "level_id": keap.levels["pro"].id}]})
    assert rule.status_code == 201, rule.json
    response = post(client, keap.id, campaign(action="tag", tag="Paid-Pro, newsletter"))
    assert response.json["status"] == "processed", response.json
    [member] = members()
    assert tags_of(session, member.id) == ["newsletter", "paid-pro"]
    assert access(member.id) == {"pro": "active"}
    assert member.keap_contact_id == "4321"
    # The same tag again runs nothing twice.
    again = post(client, keap.id, campaign(action="tag", tag="paid-pro"))
    assert "Nothing changed" in event(again.json["event_id"]).last_error
    assert len(session.scalars(select(AutomationRun)).all()) == 1

    assert post(client, keap.id, campaign(action="untag", tag="newsletter")).json["status"] == "processed"
    assert tags_of(session, member.id) == ["paid-pro"]
    bad = post(client, keap.id, campaign(action="tag", tag="no spaces allowed"))
    assert bad.json["status"] == "needs_attention"


# --- authentication ---------------------------------------------------------------------------------

@pytest.mark.parametrize("key", [None, "", "wrong-key", KEY + "x"])
def test_wrong_or_missing_key_changes_nothing(client, keap, session, key):
    for in_body in (False, True):
        response = post(client, keap.id, campaign(level="pro"), key=key, in_body=in_body)
        assert response.status_code == 401, response.json
    assert event_count() == 0 and members() == []


def test_integration_without_a_secret_refuses(client, keap, session):
    keap.integration.secret = None
    session.commit()
    response = post(client, keap.id, campaign(level="pro"))
    assert response.status_code == 401 and response.json["code"] == "no_secret_configured"
    assert event_count() == 0


def test_other_kinds_of_integration_are_not_keap(client, keap, session):
    other = make_integration(kind="generic", secret=KEY)
    session.commit()
    assert post(client, other.id, campaign(level="pro")).status_code == 404


# --- needs attention, then replay ---------------------------------------------------------------------

@pytest.mark.parametrize("email", [None, "", "~Contact.Email~", "not-an-email"])
def test_no_usable_email_needs_attention(client, keap, session, email):
    fields = campaign(level="pro")
    del fields["Email"]
    if email is not None:
        fields["Email"] = email
    response = post(client, keap.id, fields)
    assert response.status_code == 200 and response.json["status"] == "needs_attention"
    assert "Email" in event(response.json["event_id"]).last_error
    assert members() == [] and grants() == []


def test_unknown_level_needs_attention_then_replays_after_the_level_exists(client, keap, api, runner, session):
    first = post(client, keap.id, campaign(level="pro,vip-club")).json
    second = post(client, keap.id, campaign(Email="sam@example.com", contactId="99", level="vip-club")).json
    assert first["status"] == second["status"] == "needs_attention"
    assert "vip-club" in event(first["event_id"]).last_error
    assert members() == [] and grants() == []

    make_level(name="VIP Club", slug="vip-club", courses=[make_course()])
    session.commit()
    replayed = api.post(f"/api/v1/events/{first['event_id']}/replay")
    assert replayed.status_code == 200 and replayed.json["status"] == "processed", replayed.json
    result = runner.invoke(args=["webhooks", "replay", str(second["event_id"])])
    assert result.exit_code == 0 and "processed" in result.output
    db.session.expire_all()
    assert sorted((g.member.email, g.level.slug) for g in grants()) == [
        ("jane.buyer@example.com", "pro"), ("jane.buyer@example.com", "vip-club"), ("sam@example.com", "vip-club")]
    assert len(emails("welcome")) == 2
    assert api.post(f"/api/v1/events/{first['event_id']}/replay").status_code == 409


def test_unknown_action_needs_attention(client, keap, session):
    response = post(client, keap.id, campaign(action="subscribe", level="pro"))
    assert response.json["status"] == "needs_attention"
    assert "enroll, revoke, tag or untag" in event(response.json["event_id"]).last_error


def test_event_detail_shows_the_pairs_without_the_key(client, keap, api, session):
    event_id = post(client, keap.id, campaign(level="pro"), in_body=True).json["event_id"]
    detail = api.get(f"/api/v1/events/{event_id}").json
    assert detail["payload"]["contactId"] == "4321" and "key" not in detail["payload"]
    assert detail["provider"] == "keap"


# --- the billing page's Keap lookup ---------------------------------------------------------------------

def test_billing_lookup_uses_the_posted_contact_without_searching_by_email(client, keap, app, session,
                                                                           mocked_responses):
    post(client, keap.id, campaign(level="pro", contactId="555"))
    [member] = members()
    assert member.external_source == "infusionsoft" and subscriptions.uses_keap(member)
    assert session.scalars(select(KeapContactLink.matched_by)).all() == ["campaign"]
    # Only the remembered contact is read: no GET /contacts?filter=email==... (responses fails on it).
    kd.on_subscriptions(mocked_responses, "555", [kd.subscription("9001", "555")])
    kd.on_payment_methods(mocked_responses, "555", [kd.payment_method("pm-old", "555")])
    kd.on_product(mocked_responses, "789", "Premium Widget")
    with app.test_request_context():
        result = subscriptions.rows_for_member(session, member)
    assert result.status == "ok" and result.contact_ids == ("555",)
    [row] = result.rows
    assert row.product_name == "Premium Widget" and row.card.last4 == "4242"


def test_external_source_comes_from_the_integration(client, keap, session):
    keap.integration.external_source = "keap"
    make_member(email="jane.buyer@example.com", external_source="thrivecart")
    session.commit()
    post(client, keap.id, campaign(level="pro"))
    [member] = members()
    assert member.external_source == "keap"


# --- owner setup -------------------------------------------------------------------------------------

def test_owner_creates_a_keap_integration_and_reads_its_setup(api, client, session):
    make_course()
    make_level(slug="gold")
    session.commit()
    created = api.post("/api/v1/integrations", json={"kind": "keap", "name": "Keap app"})
    assert created.status_code == 201, created.json
    key = created.json["secret"]
    assert key and created.json["external_source"] == "infusionsoft"
    integration_id = created.json["id"]
    assert "secret" not in api.get(f"/api/v1/integrations/{integration_id}").json

    setup = api.get(f"/api/v1/integrations/{integration_id}/keap-setup")
    assert setup.status_code == 200
    assert setup.json["url"] == f"http://coursegate.test/webhooks/keap/{integration_id}?key={key}"
    pairs = {p["name"]: p["value"] for p in setup.json["pairs"]}
    assert pairs == {"Email": "~Contact.Email~", "contactId": "~Contact.Id~", "FirstName": "~Contact.FirstName~",
                     "LastName": "~Contact.LastName~", "action": "enroll", "level": "gold"}
    assert [e["action"] for e in setup.json["examples"]] == ["enroll", "revoke", "tag", "untag"]

    # What the setup says works as it stands (Keap fills the merge fields).
    filled = {p["name"]: p["value"].replace("~Contact.Email~", "amy@example.com").replace("~Contact.Id~", "8")
              for p in setup.json["pairs"]}
    response = client.post(setup.json["url"].removeprefix("http://coursegate.test"), data=filled)
    assert response.json["status"] == "processed", response.json
    db.session.expire_all()
    assert [(g.member.email, g.level.slug) for g in grants()] == [("amy@example.com", "gold")]

    changed = api.patch(f"/api/v1/integrations/{integration_id}", json={"external_source": "keap"})
    assert changed.status_code == 200 and changed.json["external_source"] == "keap"
    assert api.get("/api/v1/integrations/{}/keap-setup".format(
        api.post("/api/v1/integrations", json={"kind": "generic", "name": "G"}).json["id"])).status_code == 409
    assert client.get(f"/api/v1/integrations/{integration_id}/keap-setup").status_code == 401


def test_stored_events_keep_no_key_anywhere(client, keap, session):
    post(client, keap.id, campaign(level="pro"))
    post(client, keap.id, campaign(level="pro"), in_body=True)
    for row in session.scalars(select(WebhookEvent)):
        assert KEY not in row.body and KEY not in json.dumps(row.headers)


def test_campaign_and_legacy_posts_for_one_contact_are_one_member_and_one_grant(client, keap, session):
    member = make_member(email="jane.buyer@example.com")
    session.commit()
    post(client, keap.id, campaign(level="pro"))
    post(client, keap.id, legacy_contact(Id="4321"))
    assert [m.id for m in members()] == [member.id] and len(grants()) == 1
    assert db.session.scalar(select(Member.keap_contact_id)) == "4321"


@pytest.mark.postgres
def test_the_same_step_posted_three_times_at_once_enrols_once(live_server, keap, session):
    from tests.fulfillment.test_concurrency import post_together

    url = f"{live_server}/webhooks/keap/{keap.id}?key={KEY}"
    for n in range(5):
        body = urlencode(campaign(Email=f"twice{n}@example.com", contactId=str(900 + n), level="pro,bonus")).encode()
        responses = post_together(url, [(body, "application/x-www-form-urlencoded")] * 3)
        assert [(r.status_code, r.json()["status"]) for r in responses] == [(200, "processed")] * 3
    session.expire_all()
    assert len(members()) == 5 and len(grants()) == 10 and len(emails("welcome")) == 5
    assert len(session.scalars(select(KeapContactLink)).all()) == 5
