"""The member's Keap subscriptions: matching by email, remembered contacts, failures, cache."""

import os
from datetime import date
from decimal import Decimal

import pytest
import requests
from responses import matchers
from sqlalchemy import select

from keap import subscriptions
from keap.contacts import on_member_email_changed
from keap.models import KeapContactLink
from membership.models import Member
from tests.keap import keapdata as kd


def test_member_with_keap_subscriptions_gets_rows(session, keap_member, mocked_responses):
    member = keap_member(email="jane@example.com")
    kd.standard_member_setup(mocked_responses, "jane@example.com")

    result = subscriptions.rows_for_member(session, member)

    assert result.status == "ok" and result.message is None
    [row] = result.rows
    assert (row.source, row.subscription_id, row.product_name) == ("keap", "9001", "Premium Widget")
    assert (row.started_at, row.renews_on) == (date(2024, 5, 21), date(2024, 6, 21))
    assert (row.amount, row.interval_unit, row.interval_count, row.interval_label) == (
        Decimal("49.00"), "month", 1, "every month")
    assert (row.card.brand, row.card.last4, row.card.exp_month, row.card.exp_year) == ("Visa", "4242", 7, 2030)
    assert (row.card.payment_method_id, row.card.merchant_account_id) == ("pm-old", "1")
    # The contact is remembered on the member.
    assert member.keap_contact_id == "101"
    assert session.scalars(select(KeapContactLink.contact_id)).all() == ["101"]
    # Every call carries the service-account key and a timeout; the filter is URL-encoded.
    first = mocked_responses.calls[0].request
    assert first.headers["X-Keap-API-Key"] == kd.API_KEY
    assert "filter=email%3D%3Djane%40example.com" in first.url
    assert all(call.request.req_kwargs["timeout"] == 5.0 for call in mocked_responses.calls)
    assert "contact_id%3D%3D101%3Bstatus%3D%3DActive" in mocked_responses.calls[1].request.url


def test_interval_and_amount_follow_cycle_and_frequency(session, keap_member, mocked_responses):
    member = keap_member()
    kd.standard_member_setup(mocked_responses, member.email, subs=[
        kd.subscription("1", "101", billing_cycle="YEAR", billing_frequency=1, billing_amount=199.5),
        kd.subscription("2", "101", billing_cycle="WEEK", billing_frequency=2, billing_amount=10000,
                        next_bill_date="2024-06-01"),
    ])
    rows = subscriptions.rows_for_member(session, member).rows
    assert [(r.subscription_id, r.amount, r.interval_label) for r in rows] == [
        ("2", Decimal("10000.00"), "every 2 weeks"), ("1", Decimal("199.50"), "every year")]


def test_member_without_keap_contact_sees_no_keap_rows(session, keap_member, mocked_responses):
    member = keap_member(email="nobody@example.com", external_source="keap")
    kd.on_contacts(mocked_responses, "nobody@example.com", [])
    result = subscriptions.rows_for_member(session, member)
    assert (result.status, result.rows, result.message) == ("ok", (), None)
    assert len(mocked_responses.calls) == 1  # no subscription or card calls
    assert member.keap_contact_id is None


def test_several_contacts_with_the_email_are_merged(session, keap_member, mocked_responses):
    member = keap_member(email="jane@example.com", external_source="KEAP")
    mocked_responses.get(f"{kd.BASE}/contacts", json={"contacts": [
        kd.contact("101", "jane@example.com"),
        kd.contact("202", "work@example.com", "JANE@Example.com"),  # EMAIL2, another case
        kd.contact("303", "jane@example.com.evil.test"),  # Keap's filter matched, but it is not her email
    ], "next_page_token": "p2"})
    mocked_responses.get(f"{kd.BASE}/contacts", json={"contacts": [
        kd.contact("404", "a@example.com", "b@example.com", "jane@example.com")], "next_page_token": ""},
        match=[matchers.query_param_matcher(
            {"filter": "email==jane@example.com", "fields": "email_addresses", "page_size": "100",
             "page_token": "p2"})])
    kd.on_subscriptions(mocked_responses, "101", [kd.subscription("1", "101")], next_page_token="next")
    kd.on_subscriptions(mocked_responses, "101", [kd.subscription("2", "101", product_id="790")], page_token="next")
    kd.on_payment_methods(mocked_responses, "101", [kd.payment_method("pm-old", "101")])
    kd.on_subscriptions(mocked_responses, "202", [kd.subscription("3", "202", payment_method_id="pm-9",
                                                                  next_bill_date="2024-07-01")])
    kd.on_payment_methods(mocked_responses, "202", [kd.payment_method("pm-9", "202", brand="MasterCard",
                                                                      last_four="5454")])
    kd.on_subscriptions(mocked_responses, "404", [])
    kd.on_product(mocked_responses, "789", "Premium Widget")
    kd.on_product(mocked_responses, "790", "Coaching Club")

    result = subscriptions.rows_for_member(session, member)

    assert result.contact_ids == ("101", "202", "404")
    assert sorted((r.subscription_id, r.contact_id, r.product_name, r.card.last4) for r in result.rows) == [
        ("1", "101", "Premium Widget", "4242"), ("2", "101", "Coaching Club", "4242"),
        ("3", "202", "Premium Widget", "5454")]
    assert sorted(session.scalars(select(KeapContactLink.contact_id))) == ["101", "202", "404"]
    assert member.keap_contact_id == "101"
    # The product is read once however many subscriptions share it.
    assert sum("/products/789" in c.request.url for c in mocked_responses.calls) == 1


@pytest.mark.parametrize("source", [None, "", "thrivecart", "stripe"])
def test_member_not_from_keap_makes_no_calls_at_all(session, keap_member, mocked_responses, source):
    member = keap_member(external_source=source)
    result = subscriptions.rows_for_member(session, member)
    assert result.status == "not_applicable" and result.rows == ()
    assert len(mocked_responses.calls) == 0


def test_keap_unreachable_gives_a_plain_message(session, keap_member, mocked_responses, sleeps, caplog):
    member = keap_member()
    for _ in range(3):
        kd.on_keap_down(mocked_responses)
    result = subscriptions.rows_for_member(session, member)
    assert result.status == "unavailable" and result.rows == ()
    assert "could not be loaded right now" in result.message
    assert len(mocked_responses.calls) == 3  # the first try and two retries, with backoff between
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0] / 2 >= 0
    assert f"member {member.id}" in caplog.text and kd.API_KEY not in caplog.text


def test_keap_503_is_retried_then_reported(session, keap_member, mocked_responses):
    member = keap_member()
    for _ in range(3):
        mocked_responses.get(f"{kd.BASE}/contacts", status=503, body="<html>Service Unavailable</html>")
    result = subscriptions.rows_for_member(session, member)
    assert result.status == "unavailable"
    assert len(mocked_responses.calls) == 3


def test_keap_500_once_then_success(session, keap_member, mocked_responses):
    member = keap_member()
    mocked_responses.get(f"{kd.BASE}/contacts", status=500, json=kd.error(500))
    kd.standard_member_setup(mocked_responses, member.email)
    result = subscriptions.rows_for_member(session, member)
    assert result.status == "ok" and len(result.rows) == 1


def test_slow_keap_times_out_without_waiting_again(session, keap_member, mocked_responses, make_app):
    member = keap_member()
    mocked_responses.get(f"{kd.BASE}/contacts", body=requests.ReadTimeout("read timed out"))
    result = subscriptions.rows_for_member(session, member)
    assert result.status == "unavailable" and "could not be loaded" in result.message
    assert len(mocked_responses.calls) == 1  # a read timeout is not retried: the page has waited enough


def test_timeout_is_configurable(app_config, make_app, mocked_responses):
    from keap.client import KeapClient, KeapSettings

    app = make_app(KEAP_TIMEOUT=1.5)
    client = KeapClient(KeapSettings.from_config(app.config))
    kd.on_contacts(mocked_responses, "x@example.com", [])
    client.find_contacts_by_email("x@example.com")
    assert mocked_responses.calls[0].request.req_kwargs["timeout"] == 1.5


def test_rate_limited_then_success_honours_retry_after(session, keap_member, mocked_responses, sleeps):
    member = keap_member()
    mocked_responses.get(f"{kd.BASE}/contacts", status=429, json=kd.THROTTLED, headers={"Retry-After": "2"})
    kd.standard_member_setup(mocked_responses, member.email)
    result = subscriptions.rows_for_member(session, member)
    assert result.status == "ok" and [r.subscription_id for r in result.rows] == ["9001"]
    assert sleeps == [2.0]


def test_throttle_signalled_only_by_the_string_code_is_retried(session, keap_member, mocked_responses, sleeps):
    # Keap's throttle body with code "429" (a string), even behind another status, means: back off.
    member = keap_member()
    mocked_responses.get(f"{kd.BASE}/contacts", status=400, json=kd.THROTTLED)
    kd.standard_member_setup(mocked_responses, member.email)
    assert subscriptions.rows_for_member(session, member).status == "ok"
    assert len(sleeps) == 1


def test_rate_limited_forever_gives_the_plain_message(session, keap_member, mocked_responses, sleeps):
    member = keap_member()
    for _ in range(3):
        mocked_responses.get(f"{kd.BASE}/contacts", status=429, json=kd.THROTTLED)
    result = subscriptions.rows_for_member(session, member)
    assert result.status == "unavailable" and "could not be loaded right now" in result.message
    assert len(mocked_responses.calls) == 3 and len(sleeps) == 2


def test_a_long_retry_after_is_not_waited_for(session, keap_member, mocked_responses, sleeps):
    member = keap_member()
    mocked_responses.get(f"{kd.BASE}/contacts", status=429, json=kd.THROTTLED, headers={"Retry-After": "120"})
    assert subscriptions.rows_for_member(session, member).status == "unavailable"
    assert len(mocked_responses.calls) == 1 and sleeps == []


def test_rejected_key_is_reported_without_the_key(session, keap_member, mocked_responses, caplog):
    member = keap_member()
    mocked_responses.get(f"{kd.BASE}/contacts", status=401,
                         json={"code": 401, "message": "Invalid Access Token", "status": "UNAUTHENTICATED"})
    result = subscriptions.rows_for_member(session, member)
    assert result.status == "unavailable"
    assert "keap_auth_failed" in caplog.text and kd.API_KEY not in caplog.text


def test_without_an_api_key_keap_is_not_called(app, make_app, mocked_responses):
    from extensions import db
    from tests.factories import make_member

    app = make_app(KEAP_API_KEY=None)
    with app.app_context():
        member = make_member(external_source="keap")
        result = subscriptions.rows_for_member(db.session, member)
        db.session.rollback()
    assert result.status == "unavailable" and len(mocked_responses.calls) == 0


def test_email_changed_after_matching_keeps_the_billing_view(session, keap_member, mocked_responses):
    member = keap_member(email="old@example.com")
    kd.standard_member_setup(mocked_responses, "old@example.com")
    assert len(subscriptions.rows_for_member(session, member).rows) == 1
    session.commit()

    old = member.email
    member.email = "new@example.com"
    on_member_email_changed(session, member, old)  # the push setting is off: nothing is sent to Keap
    session.commit()
    calls_before = len(mocked_responses.calls)

    kd.on_contacts(mocked_responses, "new@example.com", [])  # Keap does not know the new address
    kd.on_subscriptions(mocked_responses, "101", [kd.subscription("9001", "101")])
    kd.on_payment_methods(mocked_responses, "101", [kd.payment_method("pm-old", "101")])
    kd.on_product(mocked_responses, "789", "Premium Widget")
    result = subscriptions.rows_for_member(session, member)  # the cache was dropped by the change
    assert [r.subscription_id for r in result.rows] == ["9001"]
    assert len(mocked_responses.calls) == calls_before + 4


def test_email_changed_before_any_matching_finds_the_contact_by_the_old_email(session, keap_member,
                                                                              mocked_responses):
    member = keap_member(email="old@example.com")
    kd.on_contacts(mocked_responses, "old@example.com", [kd.contact("101", "Old@Example.com")])
    member.email = "new@example.com"
    on_member_email_changed(session, member, "old@example.com")
    assert subscriptions.remembered_contact_ids(session, member) == ["101"]


def test_email_change_lookup_failing_does_not_block_the_change(session, keap_member, mocked_responses):
    member = keap_member(email="old@example.com")
    for _ in range(3):
        kd.on_keap_down(mocked_responses)
    member.email = "new@example.com"
    on_member_email_changed(session, member, "old@example.com")
    session.commit()
    assert member.email == "new@example.com"


def test_email_change_is_pushed_to_keap_when_the_owner_says_so(app, make_app, mocked_responses):
    from extensions import db
    from tests.factories import make_member

    app = make_app(KEAP_PUSH_EMAIL_CHANGES="true")
    with app.app_context():
        member = make_member(email="old@example.com", external_source="infusionsoft", keap_contact_id="101")
        db.session.commit()
        mocked_responses.get(f"{kd.BASE}/contacts/101", json=kd.contact("101", "work@example.com", "Old@Example.com"))
        mocked_responses.patch(
            f"{kd.BASE}/contacts/101", json=kd.contact("101", "work@example.com", "new@example.com"),
            match=[matchers.query_param_matcher({"update_mask": "email_addresses"}),
                   matchers.json_params_matcher({"email_addresses": [
                       {"email": "work@example.com", "field": "EMAIL1"},
                       {"email": "new@example.com", "field": "EMAIL2"}]})])
        member.email = "new@example.com"
        on_member_email_changed(db.session, member, "old@example.com")
        assert len(mocked_responses.calls) == 0  # nothing leaves before the commit
        db.session.commit()  # the job runs after the commit (in-process here)
    assert [c.request.method for c in mocked_responses.calls] == ["GET", "PATCH"]


def test_email_change_is_not_pushed_by_default(session, keap_member, mocked_responses):
    member = keap_member(email="old@example.com", keap_contact_id="101")
    member.email = "new@example.com"
    on_member_email_changed(session, member, "old@example.com")
    session.commit()
    assert len(mocked_responses.calls) == 0


def test_reads_are_cached_per_member(session, keap_member, mocked_responses):
    member = keap_member()
    kd.standard_member_setup(mocked_responses, member.email)
    first = subscriptions.rows_for_member(session, member)
    calls = len(mocked_responses.calls)
    second = subscriptions.rows_for_member(session, member)
    assert second == first and len(mocked_responses.calls) == calls

    other = keap_member(email="other@example.com")
    kd.on_contacts(mocked_responses, "other@example.com", [])
    assert subscriptions.rows_for_member(session, other).rows == ()  # the cache is per member


def test_cache_is_dropped_after_a_change(session, keap_member, mocked_responses):
    member = keap_member()
    kd.standard_member_setup(mocked_responses, member.email)
    subscriptions.rows_for_member(session, member)
    subscriptions.forget(member.id)
    kd.on_contacts(mocked_responses, member.email, [kd.contact("101", member.email)])
    kd.on_subscriptions(mocked_responses, "101", [])  # cancelled in Keap meanwhile
    assert subscriptions.rows_for_member(session, member).rows == ()


def test_cache_can_be_switched_off(app, make_app, mocked_responses):
    from extensions import db
    from tests.factories import make_member

    app = make_app(KEAP_CACHE_SECONDS=0)
    with app.app_context():
        member = make_member(external_source="keap")
        kd.standard_member_setup(mocked_responses, member.email)
        kd.standard_member_setup(mocked_responses, member.email)
        subscriptions.rows_for_member(db.session, member)
        subscriptions.rows_for_member(db.session, member)
        db.session.rollback()
    assert len(mocked_responses.calls) == 8


def test_a_failure_is_remembered_briefly_so_pages_do_not_pile_up_on_keap(session, keap_member, mocked_responses):
    member = keap_member()
    for _ in range(3):
        kd.on_keap_down(mocked_responses)
    assert subscriptions.rows_for_member(session, member).status == "unavailable"
    assert subscriptions.rows_for_member(session, member).status == "unavailable"
    assert len(mocked_responses.calls) == 3


def test_inactive_subscriptions_are_left_out(session, keap_member, mocked_responses):
    member = keap_member()
    kd.standard_member_setup(mocked_responses, member.email, subs=[
        kd.subscription("1", "101"), kd.subscription("2", "101", active=False)])
    assert [r.subscription_id for r in subscriptions.rows_for_member(session, member).rows] == ["1"]


def test_owner_api_email_change_reaches_keap(app, make_app, mocked_responses):
    """The member update service calls the Keap link: a PATCH of the email through our API is pushed."""
    from extensions import db
    from membership import auth
    from tests.factories import make_member

    app = make_app(KEAP_PUSH_EMAIL_CHANGES="true")
    with app.app_context():
        member = make_member(email="old@example.com", external_source="Infusionsoft", keap_contact_id="101")
        _, key = auth.create_api_key(db.session, "t")
        db.session.commit()
        member_id = member.id
    mocked_responses.get(f"{kd.BASE}/contacts/101", json=kd.contact("101", "old@example.com"))
    mocked_responses.patch(
        f"{kd.BASE}/contacts/101", json=kd.contact("101", "new@example.com"),
        match=[matchers.json_params_matcher({"email_addresses": [{"email": "new@example.com", "field": "EMAIL1"}]})])
    response = app.test_client().patch(f"/api/v1/members/{member_id}", json={"email": "New@Example.com"},
                                       headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200 and response.json["email"] == "new@example.com"
    response.close()  # as a WSGI server does once the answer is sent: the after-response jobs run
    assert [c.request.method for c in mocked_responses.calls] == ["GET", "PATCH"]


def test_with_redis_every_process_shares_the_cache_so_a_card_change_shows_everywhere(make_app, mocked_responses):
    """Two apps stand for two gunicorn processes: one caches, the other drops it after a card change."""
    from tests.production.conftest import REDIS_HOST, REDIS_PORT, redis_reachable

    if not redis_reachable():
        pytest.skip("needs Redis at 127.0.0.1:6379")
    from extensions import db
    from tests.factories import make_member

    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{os.environ.get('COURSEGATE_TEST_REDIS_DB', '7')}"
    first, second = make_app(RATELIMIT_STORAGE_URI=url), make_app(RATELIMIT_STORAGE_URI=url)
    with first.app_context():
        member = make_member(external_source="keap")
        db.session.commit()
        member_id, email = member.id, member.email
        subscriptions.forget(member_id)
        kd.standard_member_setup(mocked_responses, email)
        shown = subscriptions.rows_for_member(db.session, member)
        db.session.commit()
    calls = len(mocked_responses.calls)
    with second.app_context():
        member = db.session.get(Member, member_id)
        assert subscriptions.rows_for_member(db.session, member) == shown  # from Redis: Keap not asked
        assert len(mocked_responses.calls) == calls
        subscriptions.forget(member_id)  # this process saw the card change
        db.session.rollback()
    with first.app_context():
        member = db.session.get(Member, member_id)
        kd.on_contacts(mocked_responses, email, [kd.contact("101", email)])
        kd.on_subscriptions(mocked_responses, "101", [])
        assert subscriptions.rows_for_member(db.session, member).rows == ()  # the other process asks Keap again
        subscriptions.forget(member_id)
        db.session.rollback()
