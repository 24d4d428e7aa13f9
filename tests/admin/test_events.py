"""The Events page, an integration's deliveries and test delivery, and the member page's cart panels, driven with
the test client (the browser test walks the same flow in Chromium)."""

from __future__ import annotations

import json

from markupsafe import escape
from sqlalchemy import select

from automations.models import AutomationRule, AutomationRun
from extensions import db
from fulfillment.errors import EventNotReplayable
from fulfillment.models import WebhookEvent
from fulfillment.models import Integration
from membership.models import Grant, Level, Member
from tests import factories
from tests.admin.orders import form_body, order_with_bump_and_upsell


def shop(app, *, upsell: bool = True, **settings) -> dict:
    """A ThriveCart integration: product 12 -> Pro, bump 12 -> Bonus Pack, upsell 3 -> VIP Coaching."""
    with app.app_context():
        course = factories.make_course(slug="mobile-app-pro")
        levels = {name: factories.make_level(name=name, courses=[course]) for name in ("Pro", "Bonus Pack", "VIP Coaching")}
        integration = factories.make_integration(name="My ThriveCart", **settings)
        factories.make_rule(integration, "12", [levels["Pro"]])
        factories.make_rule(integration, "12", [levels["Bonus Pack"]], item_type="bump")
        if upsell:
            factories.make_rule(integration, "3", [levels["VIP Coaching"]], item_type="upsell")
        db.session.commit()
        return {"id": integration.id, "levels": {name: level.id for name, level in levels.items()}}


def deliver(client, integration_id: int, tree: dict):
    body, content_type = form_body(tree)
    response = client.post(f"/webhooks/thrivecart/{integration_id}", data=body, content_type=content_type)
    response.close()
    return response


def test_the_event_log_filters_shows_the_payload_without_the_secret_and_replays(admin, app, client):
    cart = shop(app, upsell=False)
    first = deliver(client, cart["id"], order_with_bump_and_upsell())
    assert first.json["status"] == "needs_attention"  # upsell 3 unlocks nothing yet
    event_id = first.json["event_id"]
    other = deliver(client, cart["id"], order_with_bump_and_upsell(email="sam@example.com", order_id="555"))
    assert deliver(client, cart["id"], order_with_bump_and_upsell()).json["status"] == "duplicate"

    page = admin.get("/admin/events")
    assert page.status_code == 200
    assert page.text.count('href="/admin/events/') >= 3 and "needs attention" in page.text
    by_email = admin.get("/admin/events?email=SAM@example.com").text
    assert f'href="/admin/events/{other.json["event_id"]}"' in by_email
    assert f'href="/admin/events/{event_id}"' not in by_email
    attention = admin.get("/admin/events?status=attention").text
    assert f'href="/admin/events/{event_id}"' in attention
    assert admin.get("/admin/events?status=duplicate").text.count('href="/admin/events/') == 1
    assert admin.get(f"/admin/events?integration_id={cart['id'] + 1}").text.count('href="/admin/events/') == 0
    assert admin.get("/admin/events/needing-attention").headers["Location"].endswith("/admin/events?status=attention")

    detail = admin.get(f"/admin/events/{event_id}").text
    assert "TESTSECRET" not in detail and "thrivecart_secret" not in detail
    assert str(escape('"event": "order.success"')) in detail  # pretty-printed JSON
    assert str(escape('  "purchase_map": [')) in detail
    assert "upsell-3" in detail and "Replay this event" in detail

    # The missing rule is added; the replay grants the upsell too.
    with app.app_context():
        integration = db.session.get(Integration, cart["id"])
        vip = db.session.get(Level, cart["levels"]["VIP Coaching"])
        factories.make_rule(integration, "3", [vip], item_type="upsell")
        db.session.commit()
    without_token = admin.post(f"/admin/events/{event_id}/replay", csrf=False)
    assert without_token.status_code == 400
    replayed = admin.post(f"/admin/events/{event_id}/replay", follow_redirects=True)
    assert f"Event #{event_id} replayed: processed." in replayed.text
    with app.app_context():
        grants = db.session.scalars(select(Grant).join(Member).where(Member.email == "jane.buyer@example.com")).all()
        assert sorted(g.line_ref for g in grants) == ["bump-12", "product-12", "upsell-3"]
    # Once processed, a replay is refused with the API's message.
    again = admin.post(f"/admin/events/{event_id}/replay", follow_redirects=True)
    assert str(escape(EventNotReplayable.message)) in again.text
    assert admin.get("/admin/events/99999").status_code == 404


def test_an_integration_shows_its_deliveries_and_sends_a_test_delivery(admin, app, client):
    cart = shop(app)
    deliver(client, cart["id"], order_with_bump_and_upsell())
    page = admin.get(f"/admin/integrations/{cart['id']}").text
    assert "Recent deliveries of My ThriveCart" in page and "jane.buyer@example.com" in page
    assert "It grants nothing until" in page

    # Test orders are not accepted: recorded, nothing granted, and the page says so.
    sent = admin.post(f"/admin/integrations/{cart['id']}/test-delivery", follow_redirects=True)
    assert "Test delivery sent as event #" in sent.text and ": ignored. Test-mode delivery" in sent.text
    with app.app_context():
        test_event = db.session.scalars(select(WebhookEvent).order_by(WebhookEvent.id.desc())).first()
        assert (test_event.test_mode, test_event.event_type, test_event.email) == (True, "order.success",
                                                                                    "owner@example.com")
        assert json.loads(test_event.body)["purchase_map"] == ["product-12"]
        assert not db.session.scalars(select(Member).where(Member.email == "owner@example.com")).first()

    admin.post(f"/admin/integrations/{cart['id']}", {"name": "My ThriveCart", "accept_test_orders": "y",
                                                     "cancel_access": "period_end", "grace_days": "7"})
    sent = admin.post(f"/admin/integrations/{cart['id']}/test-delivery", follow_redirects=True)
    assert ": processed." in sent.text
    with app.app_context():
        owner_member = db.session.scalars(select(Member).where(Member.email == "owner@example.com")).one()
        assert [g.level.name for g in db.session.scalars(owner_member.grants.select())] == ["Pro"]

    # Another cart gets our own generic format; with no product configured, the event says what is missing.
    with app.app_context():
        generic = factories.make_integration(kind="generic", secret="generic-secret")
        stripe = factories.make_integration(kind="stripe", secret="whsec_test")
        db.session.commit()
        generic_id, stripe_id = generic.id, stripe.id
    sent = admin.post(f"/admin/integrations/{generic_id}/test-delivery", follow_redirects=True)
    assert ": ignored. Test-mode delivery" in sent.text and "order.completed" in sent.text
    admin.post(f"/admin/integrations/{generic_id}", {"name": "Shop", "accept_test_orders": "y",
                                                     "cancel_access": "period_end", "grace_days": "7"})
    sent = admin.post(f"/admin/integrations/{generic_id}/test-delivery", follow_redirects=True)
    assert ": needs attention. No fulfillment rule maps product-1." in sent.text
    # Stripe signs its own test events.
    refused = admin.post(f"/admin/integrations/{stripe_id}/test-delivery", follow_redirects=True)
    assert "Send test webhook" in refused.text


def test_a_members_page_shows_orders_events_and_tags_and_tags_run_automations(admin, app, client):
    cart = shop(app)
    event_id = deliver(client, cart["id"], order_with_bump_and_upsell()).json["event_id"]
    with app.app_context():
        member = db.session.scalars(select(Member).where(Member.email == "jane.buyer@example.com")).one()
        member_id = member.id
        db.session.add(AutomationRule(name="VIP welcome", trigger="tag_added", tag="vip",
                                      actions=[{"type": "grant_level", "level_id": cart["levels"]["VIP Coaching"]}]))
        db.session.commit()
    page = admin.get(f"/admin/members/{member_id}").text
    assert "Orders of jane.buyer@example.com" in page
    assert "bump-12: Bonus Pack" in page and "upsell-3: VIP Coaching" in page and "product-12: Pro" in page
    assert f'href="/admin/events/{event_id}"' in page
    assert "Cart events of jane.buyer@example.com" in page and "No tags." not in page  # the purchase tagged her

    added = admin.post(f"/admin/members/{member_id}/tags", {"tag": "VIP"}, follow_redirects=True)
    assert "Tagged jane.buyer@example.com with “vip”." in added.text
    with app.app_context():
        runs = db.session.scalars(select(AutomationRun).where(AutomationRun.rule_name == "VIP welcome")).all()
        assert [run.status for run in runs] == ["succeeded"]
    again = admin.post(f"/admin/members/{member_id}/tags", {"tag": "vip"}, follow_redirects=True)
    assert "already carries “vip”" in again.text
    blank = admin.post(f"/admin/members/{member_id}/tags", {"tag": ""}, follow_redirects=True)
    assert "This field is required." in blank.text
    removed = admin.post(f"/admin/members/{member_id}/tags/remove", {"name": "vip"}, follow_redirects=True)
    assert "Removed “vip” from jane.buyer@example.com." in removed.text
    missing = admin.post(f"/admin/members/{member_id}/tags/remove", {"name": "vip"}, follow_redirects=True)
    assert "The member does not carry that tag." in missing.text


def test_automations_are_listed_with_runs_and_endpoints(admin, app):
    from automations.models import WebhookDelivery, WebhookEndpoint

    with app.app_context():
        db.session.add(AutomationRule(name="Tag buyers", trigger="purchase", actions=[{"type": "add_tag",
                                                                                      "tag": "buyer"}]))
        endpoint = WebhookEndpoint(url="https://crm.example.com/hook", secret="whsec_x", events=["purchase"])
        db.session.add(endpoint)
        db.session.flush()
        db.session.add(WebhookDelivery(endpoint_id=endpoint.id, event_type="purchase", body="{}", status="failed",
                                       attempt_count=3, last_status_code=500, last_error="Server error"))
        db.session.commit()
        endpoint_id = endpoint.id
    page = admin.get("/admin/automations").text
    assert "Tag buyers" in page and "add tag" in page and "New rule" in page
    assert "https://crm.example.com/hook" in page and "whsec_x" not in page
    deliveries = admin.get(f"/admin/automations/endpoints/{endpoint_id}").text
    assert "Server error" in deliveries and "failed" in deliveries and "whsec_x" not in deliveries
    assert admin.get("/admin/automations/endpoints/999").status_code == 404


def test_an_event_page_says_what_the_delivery_did(admin, app, client):
    from emails.models import OutboundEmail
    from membership.tags import MemberTag

    cart = shop(app)
    order = deliver(client, cart["id"], order_with_bump_and_upsell())
    assert order.json["status"] == "processed"
    page = admin.get(f"/admin/events/{order.json['event_id']}").text
    with app.app_context():
        member = db.session.scalars(select(Member).where(Member.email == "jane.buyer@example.com")).one()
        grants = {g.line_ref: g.id for g in db.session.scalars(select(Grant).where(Grant.member_id == member.id))}
        welcome = db.session.scalars(select(OutboundEmail).where(OutboundEmail.member_id == member.id)).one()
        tags = sorted(row.tag.name for row in db.session.scalars(select(MemberTag)
                                                                 .where(MemberTag.member_id == member.id)))
        member_id = member.id
    did = page.split("What this delivery did", 1)[1].split("Payload", 1)[0]
    assert f'<a href="/admin/members/{member_id}">jane.buyer@example.com</a> (created)' in did
    for line_ref, grant_id in grants.items():
        assert f'href="/admin/members/{member_id}/grants/{grant_id}"' in did
        assert f"({line_ref})" in did
    assert len(grants) == 3
    assert f'<a href="/admin/emails/{welcome.id}">welcome</a>' in did
    assert tags  # the built-in purchase tags
    for name in tags:
        assert f'<span class="badge active">{name}</span>' in did
    member_page = admin.get(f"/admin/members/{member_id}").text
    assert "on order completed: order 23370556, product-12" in member_page
    assert "order:" not in member_page.split('id="tags"', 1)[1].split("</ul>", 1)[0]
    assert "Grants revoked</dt><dd>none" in did

    # The redelivery changed nothing and says which delivery it repeats.
    again = deliver(client, cart["id"], order_with_bump_and_upsell())
    duplicate = admin.get(f"/admin/events/{again.json['event_id']}").text
    assert (f'A redelivery of <a href="/admin/events/{order.json["event_id"]}">event #{order.json["event_id"]}</a>'
            in duplicate)

    # A second order by the same buyer finds the member; a refund of it revokes, and says so.
    second = order_with_bump_and_upsell(order_id="777")
    placed = deliver(client, cart["id"], second)
    assert "(found: an existing member)" in admin.get(f"/admin/events/{placed.json['event_id']}").text
    refund = json.loads(factories_payload("order.refund.product.json"))
    refund["order_id"] = refund["order"]["id"] = "777"
    refund["mode"], refund["mode_int"] = "live", "2"
    refund["customer"]["email"] = "jane.buyer@example.com"
    refund["base_product"] = refund["refund"]["id"] = refund["refund"]["product_id"] = "12"
    refunded = deliver(client, cart["id"], refund)
    assert refunded.json["status"] == "processed", refunded.json
    undone = admin.get(f"/admin/events/{refunded.json['event_id']}").text.split("What this delivery did", 1)[1]
    assert "Grants revoked</dt><dd>none" not in undone and "Grants opened</dt><dd>none" in undone


def factories_payload(name: str) -> str:
    from tests.conftest import fixture_path

    return fixture_path("thrivecart", name).read_text()


def test_an_unmapped_product_links_straight_to_its_mapping_form(admin, app, client):
    cart = shop(app, upsell=False)
    tree = order_with_bump_and_upsell()
    tree["purchase_map"] = ["product-99", "upsell-3"]
    tree["base_product"] = "99"
    tree["order"]["charges"][0]["reference"] = "99"
    tree["order"]["charges"][0]["item_identifier"] = "product_99"
    tree["order"]["charges"].pop(1)
    answer = deliver(client, cart["id"], tree)
    assert answer.json["status"] == "needs_attention"
    page = admin.get(f"/admin/events/{answer.json['event_id']}").text
    assert f'<a href="/admin/integrations/{cart["id"]}/products/99">Map product-99' in page
    assert f'<a href="/admin/integrations/{cart["id"]}/funnel">Map upsell-3 (VIP Coaching)</a>' in page
