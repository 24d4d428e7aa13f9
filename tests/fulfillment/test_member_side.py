"""What a buyer sees of their cart order: the subscription on /account/billing and /api/v1/me/subscriptions,
and the "you now have access to" email for existing members when the owner turns it on."""

from __future__ import annotations

import re
import time

from extensions import db
from fulfillment.models import Integration
from tests.factories import make_member
from tests.fulfillment.helpers import emails, order, post_tc
from tests.helpers import sign_in_as

HUB = "https://shop.example.com/customer-hub"


def _member_id(email: str) -> int:
    from membership.models import Member

    return db.session.query(Member).filter_by(email=email).one().id


def test_a_yearly_thrivecart_subscription_is_listed_on_the_billing_page_with_its_hub(client, shop, app):
    db.session.get(Integration, shop.id).manage_subscriptions_url = HUB
    db.session.commit()
    assert post_tc(client, shop.id, order(email="yearly@example.com")).json["status"] == "processed"
    sign_in_as(app, client, _member_id("yearly@example.com"))

    page = client.get("/account/billing").get_data(as_text=True)
    assert "You have no active subscriptions" not in page
    row = re.search(r'<tr id="subscription-cart-1">(.*?)</tr>', page, re.S).group(1)
    assert "Mobile &amp; Universal App Pro" in row  # the product as ThriveCart named it, not the level
    assert "Active" in row and f'href="{HUB}"' in row
    assert re.search(r"\d{4}-\d{2}-\d{2}", row)  # started

    api = client.get("/api/v1/me/subscriptions").json
    [cart] = [s for s in api["subscriptions"] if s["source"] == "cart"]
    assert cart["id"] == "3498819" and cart["status"] == "active" and cart["manage_url"] == HUB
    assert cart["edit_card_url"] == HUB and cart["product_name"] == "Mobile & Universal App Pro"
    assert {"source": "cart", "status": "ok", "message": None} in api["sources"]


def test_a_cancelled_cart_subscription_shows_until_when_and_a_buyer_without_one_sees_none(client, shop, app):
    post_tc(client, shop.id, order(email="leaving@example.com"))
    ends = int(time.time()) + 20 * 86400
    cancel = {"event": "order.subscription_cancelled", "thrivecart_secret": "TESTSECRET", "mode_int": "1",
              "order_id": "23370556", "subscription_id": "3498819", "base_product": "12",
              "customer": {"email": "leaving@example.com"},
              "subscription": {"type": "product", "id": "12", "billing_period_end": str(ends)}}
    assert post_tc(client, shop.id, cancel, "json").json["status"] == "processed"
    sign_in_as(app, client, _member_id("leaving@example.com"))
    page = client.get("/account/billing").get_data(as_text=True)
    row = re.search(r'<tr id="subscription-cart-1">(.*?)</tr>', page, re.S).group(1)
    assert "Cancelled: access until" in row
    # No management link configured: the card-update page (the hub) stands in, as the dunning email uses.
    assert 'href="https://shop.example.com/hub"' in row

    other = make_member(email="nothing@example.com")
    db.session.commit()
    sign_in_as(app, client, other.id)
    assert "You have no active subscriptions" in client.get("/account/billing").get_data(as_text=True)


def test_existing_members_get_the_access_added_email_only_when_the_integration_asks(client, shop):
    make_member(email="regular@example.com", name="Reggie")
    db.session.commit()
    post_tc(client, shop.id, order(order_id="A1", email="regular@example.com", items=["product-7"]))
    assert emails("access_added") == [] and emails("welcome") == []  # the default: welcome to new members only

    db.session.get(Integration, shop.id).access_added_email = True
    shop.course.url = "https://school.example.com/the-course"
    db.session.commit()
    post_tc(client, shop.id, order(order_id="A2", email="regular@example.com", items=["product-2"]))
    post_tc(client, shop.id, order(order_id="A2", email="regular@example.com", items=["product-2"]))  # redelivery
    [sent] = emails("access_added")
    assert sent.recipient == "regular@example.com" and sent.subject == "Test Academy: you now have access to Starter"
    assert "https://school.example.com/the-course" in sent.text_body and "/account" in sent.text_body
    assert "/login/" not in sent.text_body  # no credential: the member signs in as usual
    # A new buyer through the same cart still gets the welcome email, not both.
    post_tc(client, shop.id, order(order_id="A3", email="fresh@example.com", items=["product-2"]))
    assert [e.recipient for e in emails("welcome")] == ["fresh@example.com"]
    assert len(emails("access_added")) == 1


def test_the_integration_api_and_admin_form_carry_the_two_settings(api, shop):
    changed = api.patch(f"/api/v1/integrations/{shop.id}",
                        json={"manage_subscriptions_url": HUB, "access_added_email": True})
    assert changed.status_code == 200
    assert changed.json["manage_subscriptions_url"] == HUB and changed.json["access_added_email"] is True
    bad = api.patch(f"/api/v1/integrations/{shop.id}", json={"manage_subscriptions_url": "javascript:alert(1)"})
    assert bad.status_code == 422 and "manage_subscriptions_url" in bad.json["errors"]


def test_cart_pauses_resumes_and_scheduled_cancels_reach_automations(client, shop):
    from sqlalchemy import select

    from automations.models import AutomationEvent

    post_tc(client, shop.id, order(email="pauser@example.com"))
    base = {"thrivecart_secret": "TESTSECRET", "mode_int": "1", "order_id": "23370556", "subscription_id": "3498819",
            "base_product": "12", "customer": {"email": "pauser@example.com"}}
    for n, name in enumerate(("order.subscription_paused", "order.subscription_resumed")):
        assert post_tc(client, shop.id, {**base, "event": name, "event_id": f"e{n}"}, "json").status_code == 200
    ends = str(int(time.time()) + 5 * 86400)
    post_tc(client, shop.id, {**base, "event": "order.subscription_cancelled",
                              "subscription": {"type": "product", "id": "12", "billing_period_end": ends}}, "json")
    triggers = list(db.session.scalars(select(AutomationEvent.trigger).order_by(AutomationEvent.id)))
    assert [t for t in triggers if t.startswith(("subscription_", "cancel_"))] == [
        "subscription_paused", "subscription_resumed", "subscription_cancelled", "cancel_scheduled"]
