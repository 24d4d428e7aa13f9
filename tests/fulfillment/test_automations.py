"""Cart events drive the tags and automations: what a CRM-style site sees after real deliveries."""

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

import timeutil
from automations.models import AutomationRun
from membership.grants import run_due_revocations
from membership.tags import MemberTag
from tests.fulfillment.helpers import emails, grants, load_tc, members, order, post_tc
from tests.fulfillment.test_thrivecart import subscription_event


def tag_names(session) -> list[str]:
    session.expire_all()
    return sorted(t.tag.name for t in session.scalars(select(MemberTag)))


def test_purchase_and_refund_leave_their_tags_and_run_rules_once(client, shop, api, session):
    rule = api.post("/api/v1/automations", json={
        "name": "Bonus buyers get the VIP tag", "trigger": "order_completed",
        "level_id": shop.levels["bonus"].id, "actions": [{"type": "add_tag", "tag": "vip"}]})
    assert rule.status_code == 201, rule.json
    tree = order(order_id="7001", email="tags@example.com", items=["product-12", "bump-12"])
    post_tc(client, shop.id, tree)
    post_tc(client, shop.id, tree)  # a redelivery runs nothing twice
    assert tag_names(session) == ["purchased-12", "vip"]
    runs = session.scalars(select(AutomationRun)).all()
    assert len(runs) == 1 and runs[0].status == "succeeded"

    refund = load_tc("order.refund.product.json")
    refund.update(order_id="7001", customer={"email": "tags@example.com"})
    refund["refund"].update(type="bump", id="12")
    response = post_tc(client, shop.id, refund, "json")
    assert response.json["status"] == "processed"
    assert "refunded" in tag_names(session)
    assert {g.line_ref: g.status for g in grants()} == {"product-12": "active", "bump-12": "revoked"}


def test_failed_rebill_runs_the_default_dunning_rules_and_recovery_restores_access(client, shop, session):
    start = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
    with timeutil.frozen(start):
        post_tc(client, shop.id, load_tc("order.success.subscription.json"))
        post_tc(client, shop.id, subscription_event("order.rebill_failed", "23370556"))
    assert "payment-failed" in tag_names(session)
    assert len(emails("payment_failed")) == 1
    with timeutil.frozen(start + timedelta(days=8)):
        assert run_due_revocations(session) == 1
        session.commit()
    [grant] = grants()
    assert grant.status == "revoked" and grant.revoke_reason == "payment_failed"

    # The member pays after all: the tag goes and access comes back.
    with timeutil.frozen(start + timedelta(days=9)):
        response = post_tc(client, shop.id, subscription_event("order.subscription_payment", "23370556",
                                                               invoice_id="000000141-7"))
    assert response.json["status"] == "processed"
    assert "payment-failed" not in tag_names(session)
    [grant] = grants()
    assert grant.status == "active" and grant.revoke_reason is None
    assert [m.email for m in members()] == ["jane.buyer@example.com"]
