"""Owner API and CLI for stored deliveries: list, read, replay, reprocess, run the revocations."""

from __future__ import annotations

import json
from datetime import timedelta

import timeutil
from automations import tasks as automation_tasks
from tests.fulfillment.helpers import emails, event, grants, load_tc, members, order, post_tc


def deliver_some(client, shop):
    ok = post_tc(client, shop.id, load_tc("order.success.subscription.json"), "form").json["event_id"]
    dup = post_tc(client, shop.id, load_tc("order.success.subscription.json"), "json").json["event_id"]
    unmapped = post_tc(client, shop.id, order(order_id="77", email="Other@Example.com", items=["product-404"]),
                       "json").json["event_id"]
    tree = load_tc("order.success.subscription.json")
    tree["event"] = "cart.abandoned"
    ignored = post_tc(client, shop.id, tree).json["event_id"]
    return ok, dup, unmapped, ignored


def test_list_filters_and_paginates(api, client, shop):
    ok, dup, unmapped, ignored = deliver_some(client, shop)
    everything = api.get("/api/v1/events")
    assert everything.status_code == 200
    assert [e["id"] for e in everything.json] == [ignored, unmapped, dup, ok]  # newest first
    assert json.loads(everything.headers["X-Pagination"])["total"] == 4
    assert [e["id"] for e in api.get("/api/v1/events?status=needs_attention").json] == [unmapped]
    assert [e["id"] for e in api.get("/api/v1/events?email=OTHER@example.com").json] == [unmapped]
    assert len(api.get(f"/api/v1/events?integration_id={shop.id}").json) == 4
    assert api.get(f"/api/v1/events?integration_id={shop.id + 1}").json == []
    page = api.get("/api/v1/events?page=2&page_size=3")
    assert [e["id"] for e in page.json] == [ok]
    first = everything.json[-1]
    assert first["status"] == "processed" and first["provider"] == "thrivecart" and first["attempts"] == 1
    assert api.get("/api/v1/events?status=bogus").status_code == 422


def test_detail_has_the_payload_without_the_secret(api, client, shop):
    ok, dup, *_ = deliver_some(client, shop)
    detail = api.get(f"/api/v1/events/{ok}")
    assert detail.status_code == 200
    assert detail.json["payload"]["order_id"] == "23370556"
    assert "thrivecart_secret" not in detail.json["payload"]
    assert "TESTSECRET" not in json.dumps(detail.json)
    assert detail.json["content_type"] == "application/x-www-form-urlencoded"
    assert api.get(f"/api/v1/events/{dup}").json["duplicate_of_id"] == ok
    assert api.get("/api/v1/events/9999").status_code == 404
    assert api.get("/api/v1/events/9999").json["code"] == "event_not_found"


def test_the_events_api_needs_the_owner_key(client, shop):
    assert client.get("/api/v1/events").status_code == 401
    assert client.post("/api/v1/events/1/replay").status_code == 401


def test_replay_of_duplicates_and_processed_events_is_refused(api, client, shop):
    ok, dup, unmapped, ignored = deliver_some(client, shop)
    assert api.post(f"/api/v1/events/{ok}/replay").status_code == 409
    assert api.post(f"/api/v1/events/{dup}/replay").json["code"] == "event_already_processed"
    assert api.post(f"/api/v1/events/{ignored}/replay").json["status"] == "ignored"


def test_cli_replay_and_reprocess(runner, client, shop, session):
    ok, dup, unmapped, ignored = deliver_some(client, shop)
    second = post_tc(client, shop.id, order(order_id="78", email="third@example.com", items=["upsell-404"])).json
    assert second["status"] == "needs_attention"
    result = runner.invoke(args=["webhooks", "reprocess", "--status", "needs_attention"])
    assert result.exit_code == 0 and "Reprocessed 2 event(s): 2 needs_attention." in result.output
    # The owner adds the rules, then reprocesses.
    from tests.factories import make_rule

    make_rule(shop.integration, "404", [shop.levels["basic"]])
    make_rule(shop.integration, "404", [shop.levels["coaching"]], item_type="upsell")
    session.commit()
    result = runner.invoke(args=["webhooks", "replay", str(unmapped)])
    assert result.exit_code == 0 and f"Event #{unmapped}: processed" in result.output
    result = runner.invoke(args=["webhooks", "reprocess"])
    assert result.exit_code == 0 and "1 processed" in result.output
    session.expire_all()
    assert sorted(m.email for m in members()) == ["jane.buyer@example.com", "other@example.com",
                                                   "third@example.com"]
    assert len(emails("welcome")) == 3
    refused = runner.invoke(args=["webhooks", "replay", str(ok)])
    assert refused.exit_code != 0 and "processed already" in refused.output
    missing = runner.invoke(args=["webhooks", "replay", "9999"])
    assert missing.exit_code != 0 and "No webhook event #9999" in missing.output


def test_run_revocations_command_and_task(runner, client, shop, session):
    post_tc(client, shop.id, load_tc("order.success.subscription.json"))
    [grant] = grants()
    grant.revoke_at = timeutil.now() - timedelta(seconds=1)
    grant.scheduled_revoke_reason = "cancelled"
    session.commit()
    result = runner.invoke(args=["webhooks", "run-revocations"])
    assert result.exit_code == 0 and "Revoked 1 grant(s)." in result.output
    session.expire_all()
    assert grant.status == "revoked" and grant.revoke_reason == "cancelled"
    assert automation_tasks.run_due.run() is None  # the periodic job: nothing left to do


def test_event_ids_are_stable_in_answers(client, shop):
    response = post_tc(client, shop.id, load_tc("order.success.subscription.json"))
    assert event(response.json["event_id"]).status == response.json["status"]
