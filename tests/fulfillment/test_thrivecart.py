"""ThriveCart account webhooks: the real deliveries from shared/reference/fixtures and variants, both encodings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import timeutil
from emails import transport
from fulfillment import parsers
from membership import services as membership
from membership.grants import run_due_revocations
from tests.factories import make_integration, make_member
from tests.fulfillment.helpers import (
    ENCODINGS,
    emails,
    encode,
    event,
    event_count,
    grants,
    load_tc,
    members,
    order,
    post_tc,
)


@pytest.fixture(params=ENCODINGS)
def encoding(request):
    return request.param


def level_slugs(member_email: str | None = None, **where) -> list[str]:
    found = grants(**where)
    if member_email:
        found = [g for g in found if g.member.email == member_email]
    return sorted(g.level.slug for g in found)


# --- URL check, authentication, parsing -----------------------------------------------------------------------

def test_head_and_the_empty_check_post_answer_200_and_change_nothing(client, shop):
    assert client.head(f"/webhooks/thrivecart/{shop.id}").status_code == 200
    empty = client.post(f"/webhooks/thrivecart/{shop.id}")
    assert empty.status_code == 200 and empty.json == {"status": "ignored", "event_id": None}
    check = client.post(f"/webhooks/thrivecart/{shop.id}", data={"thrivecart_account": "shop"})
    assert check.status_code == 200
    assert event_count() == 0 and members() == []


def test_unknown_integration_or_wrong_kind_is_404(client, shop, session):
    stripe_integration = make_integration(kind="stripe", secret="whsec_x")
    session.commit()
    assert client.head("/webhooks/thrivecart/999").status_code == 404
    response = post_tc(client, stripe_integration.id, load_tc("order.success.subscription.json"))
    assert response.status_code == 404 and response.json["code"] == "integration_not_found"


@pytest.mark.parametrize("secret", [None, "", "WRONGSECRET", "testsecret", "TESTSECRET "])
def test_missing_or_wrong_secret_is_401_and_nothing_is_stored(client, shop, encoding, secret):
    tree = load_tc("order.success.subscription.json")
    if secret is None:
        del tree["thrivecart_secret"]
    else:
        tree["thrivecart_secret"] = secret
    response = post_tc(client, shop.id, tree, encoding)
    assert response.status_code == 401
    assert response.json["code"] in ("missing_secret", "invalid_secret")
    assert event_count() == 0 and members() == []


def test_an_integration_without_a_secret_refuses_everything(client, session, shop):
    # Failure mode 15: the check must not pass because both sides are empty.
    open_integration = make_integration(kind="thrivecart", secret=None, accept_test_orders=True)
    session.commit()
    for secret in ("", "TESTSECRET"):
        tree = load_tc("order.success.subscription.json")
        tree["thrivecart_secret"] = secret
        response = post_tc(client, open_integration.id, tree)
        assert response.status_code == 401 and response.json["code"] == "no_secret_configured"
    assert event_count() == 0


def test_previous_secret_works_during_a_rotation_until_it_expires(client, session, shop):
    shop.integration.secret = "NEWSECRET1"
    shop.integration.previous_secret = "TESTSECRET"
    shop.integration.previous_secret_expires_at = timeutil.now() + timedelta(days=1)
    session.commit()
    assert post_tc(client, shop.id, load_tc("order.success.subscription.json")).json["status"] == "processed"
    shop.integration.previous_secret_expires_at = timeutil.now() - timedelta(seconds=1)
    session.commit()
    assert post_tc(client, shop.id, order(order_id="2")).status_code == 401


@pytest.mark.parametrize("body,content_type", [
    (b'{"event": "order.success", ', "application/json"),
    (b"[1, 2]", "application/json"),
    (b"\xff\xfe\x00garbage", "application/x-www-form-urlencoded"),
    # Nested deeper than anything a cart sends (or Python's parser can read): refused, not a 500.
    (b'{"event": "order.success", "thrivecart_secret": "TESTSECRET", "a": ' + b"[" * 100_000 + b"]" * 100_000
     + b"}", "application/json"),
    (b'{"event": "order.success", "a": ' + b"[" * 70 + b"]" * 70 + b"}", "application/json"),
    (b"event=order.success&thrivecart_secret=TESTSECRET&a" + b"[x]" * 5000 + b"=1",
     "application/x-www-form-urlencoded"),
])
def test_unparseable_bodies_are_400_with_a_stable_code(client, shop, body, content_type):
    response = client.post(f"/webhooks/thrivecart/{shop.id}", data=body, content_type=content_type)
    assert response.status_code == 400 and response.json["code"] == "unparseable_body"
    assert event_count() == 0


def test_form_and_json_give_the_same_tree():
    # Failure mode 13: the form default must not break a JSON-minded parser (and the other way round).
    for name in ("order.success.subscription.json", "order.refund.product.json",
                 "order.subscription_payment.rebill6.json", "order.success.paypal-monthly.json"):
        tree = load_tc(name)
        from_form = parsers.decode_thrivecart(*encode(tree, "form"))
        from_json = parsers.decode_thrivecart(*encode(tree, "json"))
        assert from_form == from_json
        assert from_form["affiliate"] is None if "affiliate" in tree else True  # "null" -> None
        assert parsers.thrivecart_event(from_form) == parsers.thrivecart_event(from_json)


def test_parser_reads_the_real_fields_and_decodes_html_entities():
    event = parsers.thrivecart_event(parsers.decode_thrivecart(*encode(load_tc("order.success.subscription.json"),
                                                                       "form")))
    assert event.action == "order_completed" and event.test_mode
    assert event.email == "jane.buyer@example.com" and event.name == "Jane Buyer"
    assert event.order_ref == "23370556" and event.invoice_ref == "000001382"
    [line] = event.lines
    assert (line.item_type, line.product_id, line.pricing_option_id, line.line_ref, line.subscription_ref) == (
        "product", "12", "83322", "product-12", "3498819")
    assert line.name == "Mobile & Universal App Pro"
    # Older payload: no item_type on charges, a single and a recurring charge for one product.
    paypal = parsers.thrivecart_event(parsers.decode_thrivecart(*encode(load_tc("order.success.paypal-monthly.json"),
                                                                        "json")))
    assert [(x.line_ref, x.pricing_option_id) for x in paypal.lines] == [("product-2", "78572")]
    assert paypal.name == "demo afo"  # name is " ": first and last name instead


# --- orders ------------------------------------------------------------------------------------------------

def test_order_success_creates_the_member_grants_and_queues_one_welcome(client, shop, encoding):
    response = post_tc(client, shop.id, load_tc("order.success.subscription.json"), encoding)
    assert response.status_code == 200
    assert response.json == {"status": "processed", "event_id": response.json["event_id"]}
    [member] = members()
    assert member.email == "jane.buyer@example.com" and member.name == "Jane Buyer"
    [grant] = grants()
    # The specific pricing option rule (83322) wins over the product's all-options rule.
    assert grant.level.slug == "pro-yearly" and grant.status == "active"
    assert (grant.order_ref, grant.line_ref, grant.subscription_ref, grant.source_kind) == (
        "23370556", "product-12", "3498819", "order")
    [welcome] = emails("welcome")
    assert welcome.recipient == "jane.buyer@example.com" and "Pro-Yearly" in welcome.text_body
    stored = event(response.json["event_id"])
    assert stored.status == "processed" and stored.attempts == 1 and stored.order_ref == "23370556"
    assert stored.email == "jane.buyer@example.com" and stored.event_type == "order.success"
    assert "TESTSECRET" not in stored.body and "thrivecart_secret" not in stored.body
    assert "23370556" in stored.body and stored.headers.get("Content-Type")


def test_redelivery_is_a_duplicate_with_no_second_grant_or_email(client, shop, encoding):
    # Failure mode 3: retries must not send the welcome email twice.
    first = post_tc(client, shop.id, load_tc("order.success.subscription.json"), encoding)
    second = post_tc(client, shop.id, load_tc("order.success.subscription.json"),
                     "json" if encoding == "form" else "form")
    assert second.status_code == 200 and second.json["status"] == "duplicate"
    assert second.json["event_id"] != first.json["event_id"]
    assert event(second.json["event_id"]).duplicate_of_id == first.json["event_id"]
    assert len(members()) == 1 and len(grants()) == 1 and len(emails("welcome")) == 1


def test_every_item_counts_bump_upsell_and_downsell(client, shop, encoding):
    # Failure mode 8: not only base_product.
    tree = order(order_id="5001", email="all@example.com",
                 items=["product-12", "bump-12", "upsell-3", "downsell-5"])
    assert post_tc(client, shop.id, tree, encoding).json["status"] == "processed"
    assert sorted((g.line_ref, g.level.slug) for g in grants()) == [
        ("bump-12", "bonus"), ("downsell-5", "lite"), ("product-12", "pro"), ("upsell-3", "coaching")]
    [welcome] = emails("welcome")
    assert all(name in welcome.text_body for name in ("Pro", "Bonus", "Coaching", "Lite"))


def test_a_second_order_success_adds_only_the_upsell(client, shop, encoding):
    assert post_tc(client, shop.id, order(order_id="5002", items=["product-12"]), encoding).json["status"] == \
        "processed"
    again = post_tc(client, shop.id, order(order_id="5002", items=["product-12", "upsell-3"]), encoding)
    assert again.json["status"] == "processed"
    assert sorted(g.line_ref for g in grants()) == ["product-12", "upsell-3"]
    assert len(members()) == 1 and len(emails("welcome")) == 1


def test_email_case_and_spaces_do_not_make_two_accounts(client, shop):
    # Failure mode 1.
    post_tc(client, shop.id, order(order_id="1", email=" User@Example.com ", items=["product-12"]))
    post_tc(client, shop.id, order(order_id="2", email="user@example.com", items=["upsell-3"]))
    [member] = members()
    assert member.email == "user@example.com" and len(grants(member_id=member.id)) == 2
    assert len(emails("welcome")) == 1


def test_an_existing_member_gains_levels_without_welcome_or_new_credentials(client, shop, session):
    # Failure mode 4.
    member = make_member(email="jane.buyer@example.com", name="Jane", password_hash="hash-1", login_nonce="n1")
    session.commit()
    response = post_tc(client, shop.id, load_tc("order.success.subscription.json"))
    assert response.json["status"] == "processed"
    session.expire_all()
    assert members() == [member]
    assert (member.password_hash, member.login_nonce) == ("hash-1", "n1")
    assert level_slugs() == ["pro-yearly"] and emails() == []


def test_unmapped_order_needs_attention_creates_no_account_and_is_fulfilled_on_replay(client, shop, api, session):
    tree = order(order_id="6001", email="new@example.com", items=["product-99"])
    response = post_tc(client, shop.id, tree)
    assert response.status_code == 200 and response.json["status"] == "needs_attention"
    stored = event(response.json["event_id"])
    assert "product-99" in stored.last_error
    assert members() == [] and grants() == [] and emails() == []
    # The owner adds the rule, then replays.
    created = api.post(f"/api/v1/integrations/{shop.id}/rules",
                       json={"product_id": "99", "level_ids": [shop.levels["basic"].id]})
    assert created.status_code == 201
    replayed = api.post(f"/api/v1/events/{stored.id}/replay")
    assert replayed.status_code == 200 and replayed.json["status"] == "processed"
    assert replayed.json["attempts"] == 2 and replayed.json["last_error"] is None
    assert level_slugs() == ["basic"] and len(emails("welcome")) == 1
    # A processed event is not replayed again (it could apply twice).
    assert api.post(f"/api/v1/events/{stored.id}/replay").status_code == 409


def test_partly_mapped_order_grants_what_it_can_and_needs_attention_for_the_rest(client, shop, api):
    response = post_tc(client, shop.id, order(order_id="6002", items=["product-12", "upsell-77"]))
    assert response.json["status"] == "needs_attention"
    assert level_slugs() == ["pro"] and len(emails("welcome")) == 1
    api.post(f"/api/v1/integrations/{shop.id}/rules",
             json={"product_id": "77", "item_type": "upsell", "level_ids": [shop.levels["coaching"].id]})
    assert api.post(f"/api/v1/events/{response.json['event_id']}/replay").json["status"] == "processed"
    assert level_slugs() == ["coaching", "pro"] and len(emails("welcome")) == 1


@pytest.mark.parametrize("change", ["no_email", "guessed_names"])
def test_orders_without_the_real_fields_need_attention(client, shop, change):
    # Failure mode 14: customer_email / product_id are guessed names, not ThriveCart's.
    tree = load_tc("order.success.subscription.json")
    del tree["customer"]["email"]
    if change == "guessed_names":
        tree["customer_email"] = "guess@example.com"
        for key in ("purchase_map", "purchase_map_flat", "base_product"):
            del tree[key]
        tree["product_id"] = "12"
    response = post_tc(client, shop.id, tree)
    assert response.status_code == 200 and response.json["status"] == "needs_attention"
    assert members() == [] and grants() == []


def test_an_unusable_email_needs_attention(client, shop):
    response = post_tc(client, shop.id, order(order_id="6003", email="not-an-email", items=["product-12"]))
    assert response.json["status"] == "needs_attention"
    assert "not a usable email" in event(response.json["event_id"]).last_error
    assert members() == []


def test_test_mode_orders_are_recorded_but_grant_nothing_unless_accepted(client, shop, session, api):
    # Failure mode 11. The real fixture is a test-mode order (mode_int 1).
    shop.integration.accept_test_orders = False
    session.commit()
    response = post_tc(client, shop.id, load_tc("order.success.subscription.json"))
    assert response.status_code == 200 and response.json["status"] == "ignored"
    stored = event(response.json["event_id"])
    assert stored.test_mode and "Test-mode" in stored.last_error
    assert members() == [] and grants() == []
    # Live orders still work; and after opting in, the test order can be replayed.
    assert post_tc(client, shop.id, order(order_id="7", live=True, items=["product-12"])).json["status"] == \
        "processed"
    api.patch(f"/api/v1/integrations/{shop.id}", json={"accept_test_orders": True})
    assert api.post(f"/api/v1/events/{stored.id}/replay").json["status"] == "processed"


@pytest.mark.parametrize("name", ["cart.abandoned", "affiliate.commission_earned", "affiliate.commission_payout",
                                  "affiliate.commission_refund", "order.refunded"])
def test_events_that_do_not_change_access_are_ignored(client, shop, encoding, name):
    tree = load_tc("order.success.subscription.json")
    tree["event"] = name
    response = post_tc(client, shop.id, tree, encoding)
    assert response.status_code == 200 and response.json["status"] == "ignored"
    assert event(response.json["event_id"]).event_type == name
    assert members() == [] and grants() == []


def test_the_cart_never_waits_on_email(client, shop, monkeypatch, session):
    # Failure mode 5: a failing (or slow) mail server does not change the answer; the outbox keeps the email.
    def broken(**kwargs):
        raise ConnectionRefusedError("smtp down")

    monkeypatch.setattr(transport, "send", broken)
    response = post_tc(client, shop.id, load_tc("order.success.subscription.json"))
    assert response.status_code == 200 and response.json["status"] == "processed"
    [welcome] = emails("welcome")
    assert welcome.status == "pending" and welcome.attempts == 0  # answered before any delivery attempt
    response.close()  # the embedded default delivers once the response is done
    session.expire_all()
    assert welcome.status == "pending" and welcome.attempts == 1 and "smtp down" in welcome.last_error


# --- refunds -----------------------------------------------------------------------------------------------

def refund(order_id: str, kind: str, product_id: str, **extra) -> dict:
    tree = load_tc("order.refund.product.json")
    tree["order_id"] = tree["order"]["id"] = order_id
    tree["refund"]["type"], tree["refund"]["id"] = kind, product_id
    tree["event_id"] = f"{order_id}-{kind}-{product_id}"
    tree.update(extra)
    return tree


def test_the_real_refund_revokes_exactly_its_line(client, shop, encoding):
    # Failure modes 6 and 7: a refund takes the refunded product away, and only it.
    post_tc(client, shop.id, order(order_id="38033257", email="buyer+2@example.com", items=["product-7", "bump-7"]),
            encoding)
    assert level_slugs() == ["basic", "bonus"]
    response = post_tc(client, shop.id, load_tc("order.refund.product.json"), encoding)
    assert response.json["status"] == "processed"
    by_line = {g.line_ref: g for g in grants()}
    assert by_line["product-7"].status == "revoked" and by_line["product-7"].revoke_reason == "refunded"
    assert by_line["bump-7"].status == "active"
    ok, levels = membership.check_access(membership_session(), "buyer+2@example.com", "the-course")
    assert ok and [level.slug for level in levels] == ["bonus"]
    # The redelivery is a duplicate (same event_id).
    assert post_tc(client, shop.id, load_tc("order.refund.product.json"), encoding).json["status"] == "duplicate"


def membership_session():
    from extensions import db

    return db.session


def test_refunding_a_bump_leaves_the_main_product(client, shop):
    post_tc(client, shop.id, order(order_id="8001", items=["product-12", "bump-12"]))
    post_tc(client, shop.id, refund("8001", "bump", "12"))
    assert {g.line_ref: g.status for g in grants()} == {"product-12": "active", "bump-12": "revoked"}


def test_refunding_one_order_leaves_a_level_another_order_paid_for(client, shop):
    post_tc(client, shop.id, order(order_id="8002", email="two@example.com", items=["product-12"]))
    post_tc(client, shop.id, order(order_id="8003", email="two@example.com", items=["product-12"]))
    post_tc(client, shop.id, refund("8002", "product", "12"))
    assert sorted((g.order_ref, g.status) for g in grants()) == [("8002", "revoked"), ("8003", "active")]
    assert membership.check_access(membership_session(), "two@example.com", "the-course")[0]


def test_a_refund_before_its_order_is_applied_when_the_order_arrives(client, shop, encoding):
    # Failure mode 10: the refunded line is never granted.
    early = post_tc(client, shop.id, refund("8004", "bump", "12"), encoding)
    assert early.json["status"] == "processed" and "recorded" in event(early.json["event_id"]).last_error
    post_tc(client, shop.id, order(order_id="8004", items=["product-12", "bump-12"]), encoding)
    assert [(g.line_ref, g.status) for g in grants()] == [("product-12", "active")]


def test_a_whole_order_refunded_early_creates_no_account(client, shop):
    post_tc(client, shop.id, refund("8005", "product", "12"))
    response = post_tc(client, shop.id, order(order_id="8005", email="gone@example.com", items=["product-12"]))
    assert response.json["status"] == "processed"
    assert members() == [] and emails() == []


# --- subscriptions -------------------------------------------------------------------------------------

def subscription_event(name: str, order_id: str, product_id: str = "12", **extra) -> dict:
    tree = load_tc("order.subscription_payment.rebill6.json")
    tree["event"] = name
    tree["order_id"] = tree["order"]["id"] = order_id
    tree["subscription"]["type"], tree["subscription"]["id"] = "product", product_id
    tree["subscription_id"] = extra.pop("subscription_id", "3498819")
    tree["invoice_id"] = extra.pop("invoice_id", f"000000141-{name}")
    for key, value in extra.items():
        tree["subscription"][key] = value
    return tree


PERIOD_END = datetime(2030, 1, 31, 12, 0, tzinfo=UTC)


def test_cancel_revokes_at_the_end_of_the_paid_period(client, shop, encoding, session):
    # Failure mode 9: not now, at billing_period_end (carried out by the periodic job).
    post_tc(client, shop.id, load_tc("order.success.subscription.json"), encoding)
    tree = subscription_event("order.subscription_cancelled", "23370556",
                              billing_period_end=str(int(PERIOD_END.timestamp())),
                              billing_period_end_iso8601=PERIOD_END.isoformat())
    assert post_tc(client, shop.id, tree, encoding).json["status"] == "processed"
    [grant] = grants()
    assert grant.status == "active" and grant.revoke_at == PERIOD_END
    assert grant.scheduled_revoke_reason == "cancelled"
    with timeutil.frozen(PERIOD_END - timedelta(minutes=1)):
        assert run_due_revocations(session) == 0
    with timeutil.frozen(PERIOD_END + timedelta(minutes=1)):
        assert run_due_revocations(session) == 1
        session.commit()
    session.expire_all()
    assert grant.status == "revoked" and grant.revoke_reason == "cancelled"


def test_cancel_revokes_now_when_the_integration_says_so_or_the_date_is_unknown(client, shop, session):
    post_tc(client, shop.id, order(order_id="9001", email="a@example.com", items=["product-12"],
                                   subscription_ids={"product-12": "s1"}))
    post_tc(client, shop.id, order(order_id="9002", email="b@example.com", items=["product-12"],
                                   subscription_ids={"product-12": "s2"}))
    # No billing_period_end: now.
    post_tc(client, shop.id, subscription_event("order.subscription_cancelled", "9001", subscription_id="s1"))
    shop.integration.cancel_access = "immediately"
    session.commit()
    post_tc(client, shop.id, subscription_event("order.subscription_cancelled", "9002", subscription_id="s2",
                                                billing_period_end=str(int(PERIOD_END.timestamp()))))
    assert [(g.status, g.revoke_reason) for g in grants()] == [("revoked", "cancelled"), ("revoked", "cancelled")]


def test_a_cancel_before_its_order_is_applied_when_the_order_arrives(client, shop):
    tree = subscription_event("order.subscription_cancelled", "9003", billing_period_end=str(int(PERIOD_END.timestamp())))
    assert post_tc(client, shop.id, tree).json["status"] == "processed"
    post_tc(client, shop.id, order(order_id="9003", items=["product-12"]))
    [grant] = grants()
    assert grant.status == "active" and grant.revoke_at == PERIOD_END


def test_rebill_failed_starts_dunning_then_revokes_after_the_grace_period(client, shop, session, encoding):
    # Failure mode 16: past_due and an email, not an immediate revocation.
    start = datetime(2030, 3, 1, tzinfo=UTC)
    with timeutil.frozen(start):
        post_tc(client, shop.id, load_tc("order.success.subscription.json"), encoding)
        response = post_tc(client, shop.id, subscription_event("order.rebill_failed", "23370556"), encoding)
    assert response.json["status"] == "processed"
    [grant] = grants()
    assert grant.status == "past_due" and grant.past_due_since == start
    assert grant.revoke_at == start + timedelta(days=7)
    with timeutil.frozen(start + timedelta(days=1)):
        assert membership.check_access(session, "jane.buyer@example.com", "the-course")[0]  # access kept
    [dunning] = emails("payment_failed")
    assert dunning.recipient == "jane.buyer@example.com"
    assert "https://shop.example.com/hub" in dunning.text_body and "7 more day" in dunning.text_body
    with timeutil.frozen(start + timedelta(days=6)):
        assert run_due_revocations(session) == 0
    with timeutil.frozen(start + timedelta(days=7, seconds=1)):
        assert run_due_revocations(session) == 1
        session.commit()
    session.expire_all()
    assert grant.status == "revoked" and grant.revoke_reason == "payment_failed"


def test_payment_after_a_failed_rebill_clears_past_due_and_cancels_the_revocation(client, shop, session):
    shop.integration.card_update_url = None
    session.commit()
    post_tc(client, shop.id, load_tc("order.success.subscription.json"))
    post_tc(client, shop.id, subscription_event("order.rebill_failed", "23370556"))
    [dunning] = emails("payment_failed")
    assert "http://coursegate.test/account" in dunning.text_body  # fallback link
    post_tc(client, shop.id, subscription_event("order.subscription_payment", "23370556"))
    [grant] = grants()
    assert grant.status == "active" and grant.revoke_at is None and grant.past_due_since is None
    with timeutil.frozen(timeutil.now() + timedelta(days=30)):
        assert run_due_revocations(session) == 0


def test_the_real_rebill_extends_a_duration_level_once(client, shop, encoding):
    start = datetime(2020, 1, 24, 4, 15, tzinfo=UTC)
    with timeutil.frozen(start):
        post_tc(client, shop.id, order(order_id="3230022", email="member@example.com", items=["product-17"],
                                       live=True), encoding)
    [grant] = grants()
    assert grant.ends_at == start + timedelta(days=30)
    with timeutil.frozen(start + timedelta(days=29)):
        first = post_tc(client, shop.id, load_tc("order.subscription_payment.rebill6.json"), encoding)
        again = post_tc(client, shop.id, load_tc("order.subscription_payment.rebill6.json"), encoding)
    assert first.json["status"] == "processed" and again.json["status"] == "duplicate"
    assert event(first.json["event_id"]).dedupe_key.endswith("000000141-6:product-17")
    [grant] = grants()
    assert grant.ends_at == start + timedelta(days=60)


def test_pause_and_resume_more_than_once(client, shop, session, encoding):
    post_tc(client, shop.id, load_tc("order.success.subscription.json"), encoding)
    for day in ("1", "2"):  # the second pause is a new event (another date), not a retry of the first
        pause = subscription_event("order.subscription_paused", "23370556", invoice_id="000001382")
        pause["date_unix"] = f"170000000{day}"
        assert post_tc(client, shop.id, pause, encoding).json["status"] == "processed"
        assert post_tc(client, shop.id, pause, encoding).json["status"] == "duplicate"
        assert [g.status for g in grants()] == ["paused"]
        assert not membership.check_access(session, "jane.buyer@example.com", "the-course")[0]
        resume = subscription_event("order.subscription_resumed", "23370556", invoice_id="000001382")
        resume["date_unix"] = f"170000010{day}"
        assert post_tc(client, shop.id, resume, encoding).json["status"] == "processed"
        assert [g.status for g in grants()] == ["active"]
        assert membership.check_access(session, "jane.buyer@example.com", "the-course")[0]


# --- the Event Subscription API ------------------------------------------------------------------------

def test_event_subscription_api_names_with_webhook_id_as_the_dedupe_key(client, shop):
    tree = order(order_id="9100", email="api@example.com", items=["product-12"])
    tree.update(event="order_created", webhook_id="5b7f1c1e-0000-4000-8000-000000000001")
    first = post_tc(client, shop.id, tree, "json")
    again = post_tc(client, shop.id, tree, "json")
    assert (first.json["status"], again.json["status"]) == ("processed", "duplicate")
    refund_tree = refund("9100", "product", "12", event="order_refund_product",
                         webhook_id="5b7f1c1e-0000-4000-8000-000000000002")
    assert post_tc(client, shop.id, refund_tree, "json").json["status"] == "processed"
    assert [g.status for g in grants()] == ["revoked"]


def test_oversized_bodies_are_refused_before_reading(client, shop):
    response = client.post(f"/webhooks/thrivecart/{shop.id}", data=b"x=" + b"a" * 1_000_001,
                           content_type="application/x-www-form-urlencoded")
    assert response.status_code == 413 and response.json["code"] == "payload_too_large"
    assert event_count() == 0


def test_the_revocation_job_is_scheduled_periodically(app):
    # One job carries out every scheduled revocation (cancel at period end, grace over), whatever set it.
    schedule = app.extensions["celery"].conf.beat_schedule
    assert schedule["automations.run_due"]["task"] in app.extensions["celery"].tasks


def test_same_buyer_with_a_new_email_keeps_one_account(client, shop):
    # Failure mode 17: ThriveCart's customer id says it is the same buyer.
    first = order(order_id="9200", email="old@example.com", items=["product-12"])
    first["customer_id"] = first["customer"]["id"] = "C-77"
    post_tc(client, shop.id, first)
    second = order(order_id="9201", email="new@example.com", items=["upsell-3"])
    second["customer_id"] = second["customer"]["id"] = "C-77"
    response = post_tc(client, shop.id, second, "json")
    assert response.json["status"] == "processed"
    [member] = members()
    assert member.email == "old@example.com" and level_slugs() == ["coaching", "pro"]
    assert len(emails("welcome")) == 1
    assert "Same cart customer as old@example.com" in event(response.json["event_id"]).last_error
    # A different customer id with a new email is a new member.
    third = order(order_id="9202", email="other@example.com", items=["upsell-3"])
    third["customer_id"] = third["customer"]["id"] = "C-78"
    post_tc(client, shop.id, third)
    assert len(members()) == 2


def test_older_payload_with_single_and_recurring_charges_grants_once(client, shop, encoding):
    response = post_tc(client, shop.id, load_tc("order.success.paypal-monthly.json"), encoding)
    assert response.json["status"] == "processed"
    [grant] = grants()
    assert (grant.level.slug, grant.line_ref, grant.order_ref) == ("starter", "product-2", "1007038")
    [member] = members()
    assert (member.email, member.name) == ("demo.buyer@example.com", "demo afo")
