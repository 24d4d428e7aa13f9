"""Edit card for Keap subscriptions: Keap's hosted component, then only the right subscriptions re-pointed."""

import logging
import re

import pytest
import requests
from responses import matchers
from sqlalchemy import String, Text, select

from emails.models import OutboundEmail
from extensions import db
from keap.models import CardChange
from membership.models import Member
from tests.keap import keapdata as kd

CONTACT = "101"


@pytest.fixture
def member(app):
    from tests.factories import make_member

    with app.app_context():
        member = make_member(email="jane@example.com", name="Jane Buyer", external_source="infusionsoft")
        db.session.commit()
        return member.id


@pytest.fixture
def signed_in(client, member):
    with client.session_transaction() as s:
        s["member_id"] = member
    return client


def _subs():
    return [
        kd.subscription("A", CONTACT, product_id="789", payment_method_id="pm-old", merchant_account_id="1"),
        kd.subscription("B", CONTACT, product_id="790", payment_method_id="pm-old", merchant_account_id="1"),
        kd.subscription("C", CONTACT, product_id="789", payment_method_id="pm-other", merchant_account_id="1"),
        # Same card id but another merchant account (another processor's token): must not be touched.
        kd.subscription("D", CONTACT, product_id="789", payment_method_id="pm-old", merchant_account_id="2"),
    ]


def _methods():
    return [kd.payment_method("pm-old", CONTACT, last_four="4242", created_time="2023-01-01T00:00:00Z"),
            kd.payment_method("pm-other", CONTACT, last_four="1881", created_time="2023-06-01T00:00:00Z",
                              brand="MasterCard")]


def _keap_until_the_card_form(rsps):
    """What Keap answers before the card page asks it for a card form: Jane's contact, subscriptions, cards."""
    kd.on_contacts(rsps, "jane@example.com", [kd.contact(CONTACT, "jane@example.com")])
    kd.on_subscriptions(rsps, CONTACT, _subs())
    kd.on_payment_methods(rsps, CONTACT, _methods())
    kd.on_product(rsps, "789", "Premium Widget")
    kd.on_product(rsps, "790", "Coaching Club")
    kd.on_payment_methods(rsps, CONTACT, _methods(), merchant_account_id="1")


def _open_card_page(client, rsps, subscription_id="A"):
    _keap_until_the_card_form(rsps)
    rsps.post(f"{kd.BASE}/paymentMethodConfigs", json={"session_key": kd.SESSION_KEY},
              match=[matchers.json_params_matcher({"contact_id": CONTACT})])
    page = client.get(f"/account/billing/keap/{subscription_id}/card")
    assert page.status_code == 200, page.text
    return page


def _csrf(page) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)


def _new_card_in_keap(rsps):
    """What Keap shows after the member saved a card in the component: the newest method on account 1."""
    kd.on_payment_methods(rsps, CONTACT, [
        kd.payment_method("pm-new", CONTACT, last_four="0005", brand="Amex", month="03", year="2031",
                          created_time="2025-11-21T09:00:00Z"),
        *_methods()], merchant_account_id="1")
    kd.on_subscriptions(rsps, CONTACT, _subs())


def test_card_page_needs_a_signed_in_member(client):
    assert client.get("/account/billing/keap/A/card").status_code == 401


def test_card_page_renders_keaps_component_and_no_card_field(signed_in, mocked_responses):
    page = _open_card_page(signed_in, mocked_responses)
    html = page.text
    assert '<script src="https://payments.keap.page/lib/payment-method-embed.js"></script>' in html
    assert f'<keap-payment-method data-key="{kd.SESSION_KEY}"></keap-payment-method>' in html
    assert "Premium Widget" in html and "Visa ending 4242" in html
    assert not re.search(r"<input[^>]+name=\"(card|number|cvc|cvv|exp)", html)
    assert page.headers["Cache-Control"] == "no-store"
    # The component's script is allowed on this page (and on no other), the page is never framed.
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self' https://payments.keap.page" in policy and "frame-ancestors 'none'" in policy


def test_someone_elses_subscription_is_not_found(signed_in, mocked_responses):
    kd.on_contacts(mocked_responses, "jane@example.com", [kd.contact(CONTACT, "jane@example.com")])
    kd.on_subscriptions(mocked_responses, CONTACT, [kd.subscription("A", CONTACT)])
    kd.on_payment_methods(mocked_responses, CONTACT, _methods())
    kd.on_product(mocked_responses, "789", "Premium Widget")
    page = signed_in.get("/account/billing/keap/999/card")
    assert page.status_code == 404
    assert all("paymentMethodConfigs" not in c.request.url for c in mocked_responses.calls)


def test_card_page_when_keap_is_down_says_so(signed_in, mocked_responses):
    for _ in range(3):
        kd.on_keap_down(mocked_responses)
    page = signed_in.get("/account/billing/keap/A/card")
    assert page.status_code == 503 and "could not be reached right now" in page.text


def test_the_matched_contact_is_kept_when_keap_then_fails_to_open_the_card_form(app, signed_in, member,
                                                                                 mocked_responses):
    _keap_until_the_card_form(mocked_responses)
    mocked_responses.post(f"{kd.BASE}/paymentMethodConfigs", body=requests.ConnectionError("connection refused"))
    page = signed_in.get("/account/billing/keap/A/card")
    assert page.status_code == 503 and "could not be reached right now" in page.text
    with app.app_context():
        assert db.session.get(Member, member).keap_contact_id == CONTACT


def test_card_update_patches_only_the_subscriptions_on_the_old_card_and_account(app, signed_in, member,
                                                                                mocked_responses):
    page = _open_card_page(signed_in, mocked_responses)
    _new_card_in_keap(mocked_responses)
    for sub_id in ("A", "B"):
        mocked_responses.patch(f"{kd.BASE}/subscriptions/{sub_id}",
                               json=kd.subscription(sub_id, CONTACT, payment_method_id="pm-new"),
                               match=[matchers.query_param_matcher({"update_mask": "payment_method_id"}),
                                      matchers.json_params_matcher({"payment_method_id": "pm-new"})])

    done = signed_in.post("/account/billing/keap/A/card", data={"csrf_token": _csrf(page)})
    done.close()  # the embedded default delivers queued email once the response is closed

    # Back to the member's billing page (billing_cards.billing), where the Keap rows sit beside ours.
    assert done.status_code == 302 and done.headers["Location"].endswith("/account/billing")
    patched = [c.request.url for c in mocked_responses.calls if c.request.method == "PATCH"]
    assert sorted(u.split("/subscriptions/")[1].split("?")[0] for u in patched) == ["A", "B"]
    with app.app_context():
        [change] = db.session.scalars(select(CardChange)).all()
        assert (change.member_id, change.source, sorted(change.subscription_refs)) == (member, "keap", ["A", "B"])
        assert (change.old_last4, change.new_last4, change.new_brand) == ("4242", "0005", "Amex")
        assert (change.old_payment_method_ref, change.new_payment_method_ref) == ("pm-old", "pm-new")
        assert (change.changed_by, change.account_ref) == ("member", CONTACT)
        assert change.changed_at is not None
        [email] = db.session.scalars(select(OutboundEmail)).all()
        assert email.template == "card_updated" and email.recipient == "jane@example.com"
        assert email.subject == "Your card for Test Academy has been updated"
        assert "Amex ending 0005 (expires 03/2031)" in email.text_body
        assert "- Premium Widget\n- Coaching Club" in email.text_body
        assert "replaces the card ending 4242" in email.text_body
        assert email.status == "sent"  # the file transport in tests
    billing = signed_in.get("/account/billing/keap", follow_redirects=False)
    assert "is now used for 2 subscription(s)" in billing.text


def test_the_page_after_the_update_reads_keap_again(app, signed_in, mocked_responses):
    page = _open_card_page(signed_in, mocked_responses)
    _new_card_in_keap(mocked_responses)
    for sub_id in ("A", "B"):
        mocked_responses.patch(f"{kd.BASE}/subscriptions/{sub_id}", json={})
    signed_in.post("/account/billing/keap/A/card", data={"csrf_token": _csrf(page)})
    # The cache was dropped: the billing page asks Keap again and shows the new card.
    kd.on_contacts(mocked_responses, "jane@example.com", [kd.contact(CONTACT, "jane@example.com")])
    kd.on_subscriptions(mocked_responses, CONTACT, [kd.subscription("A", CONTACT, payment_method_id="pm-new")])
    kd.on_payment_methods(mocked_responses, CONTACT, [kd.payment_method("pm-new", CONTACT, last_four="0005",
                                                                        brand="Amex", month="03", year="2031")])
    kd.on_product(mocked_responses, "789", "Premium Widget")
    html = signed_in.get("/account/billing/keap").text
    assert "Amex ending 0005, expires 03/2031" in html and "Edit card" in html


def test_no_new_card_yet_changes_nothing(app, signed_in, mocked_responses):
    page = _open_card_page(signed_in, mocked_responses)
    kd.on_payment_methods(mocked_responses, CONTACT, _methods(), merchant_account_id="1")
    done = signed_in.post("/account/billing/keap/A/card", data={"csrf_token": _csrf(page)})
    assert done.status_code == 302 and done.headers["Location"].endswith("/account/billing/keap/A/card")
    assert not [c for c in mocked_responses.calls if c.request.method == "PATCH"]
    with app.app_context():
        assert db.session.scalars(select(CardChange)).all() == []


def test_a_new_card_on_another_merchant_account_is_not_used(app, signed_in, mocked_responses):
    page = _open_card_page(signed_in, mocked_responses)
    kd.on_payment_methods(mocked_responses, CONTACT, [
        kd.payment_method("pm-elsewhere", CONTACT, merchant_account_id="2", created_time="2025-11-21T09:00:00Z"),
        *_methods()], merchant_account_id="1")
    signed_in.post("/account/billing/keap/A/card", data={"csrf_token": _csrf(page)})
    assert not [c for c in mocked_responses.calls if c.request.method == "PATCH"]


def test_a_subscription_keap_refuses_is_reported_and_the_rest_recorded(app, signed_in, mocked_responses):
    page = _open_card_page(signed_in, mocked_responses)
    _new_card_in_keap(mocked_responses)
    mocked_responses.patch(f"{kd.BASE}/subscriptions/A", json={})
    mocked_responses.patch(f"{kd.BASE}/subscriptions/B", status=400,
                           json=kd.error(400, "payment method not valid", "INVALID_ARGUMENT"))
    signed_in.post("/account/billing/keap/A/card", data={"csrf_token": _csrf(page)})
    with app.app_context():
        [change] = db.session.scalars(select(CardChange)).all()
        assert change.subscription_refs == ["A"]
    kd.on_contacts(mocked_responses, "jane@example.com", [])
    kd.on_subscriptions(mocked_responses, CONTACT, [])
    html = signed_in.get("/account/billing/keap").text
    assert "1 subscription(s) could not be switched" in html

    # Pressing the button again moves the one still on the old card, and only that one.
    kd.on_payment_methods(mocked_responses, CONTACT, [
        kd.payment_method("pm-new", CONTACT, last_four="0005", created_time="2025-11-21T09:00:00Z"),
        *_methods()], merchant_account_id="1")
    subs = _subs()
    subs[0]["payment_method_id"] = "pm-new"
    kd.on_subscriptions(mocked_responses, CONTACT, subs)
    mocked_responses.patch(f"{kd.BASE}/subscriptions/B", json={})
    signed_in.post("/account/billing/keap/A/card", data={"csrf_token": _csrf(page)})
    with app.app_context():
        changes = db.session.scalars(select(CardChange).order_by(CardChange.id)).all()
        assert [c.subscription_refs for c in changes] == [["A"], ["B"]]


def test_a_subscription_without_a_card_gets_the_new_one_alone(app, signed_in, mocked_responses):
    subs = [kd.subscription("A", CONTACT), kd.subscription("E", CONTACT, payment_method_id="")]
    subs[1]["payment_method_id"] = None
    kd.on_contacts(mocked_responses, "jane@example.com", [kd.contact(CONTACT, "jane@example.com")])
    kd.on_subscriptions(mocked_responses, CONTACT, subs)
    kd.on_payment_methods(mocked_responses, CONTACT, _methods())
    kd.on_product(mocked_responses, "789", "Premium Widget")
    kd.on_payment_methods(mocked_responses, CONTACT, _methods(), merchant_account_id="1")
    mocked_responses.post(f"{kd.BASE}/paymentMethodConfigs", json={"session_key": kd.SESSION_KEY})
    page = signed_in.get("/account/billing/keap/E/card")
    assert page.status_code == 200
    kd.on_payment_methods(mocked_responses, CONTACT, [
        kd.payment_method("pm-new", CONTACT, created_time="2025-11-21T09:00:00Z"), *_methods()],
        merchant_account_id="1")
    kd.on_subscriptions(mocked_responses, CONTACT, subs)
    mocked_responses.patch(f"{kd.BASE}/subscriptions/E", json={})
    signed_in.post("/account/billing/keap/E/card", data={"csrf_token": _csrf(page)})
    assert [c.request.url.split("?")[0].rsplit("/", 1)[1] for c in mocked_responses.calls
            if c.request.method == "PATCH"] == ["E"]


def test_confirm_needs_the_csrf_token(signed_in, mocked_responses):
    _open_card_page(signed_in, mocked_responses)
    assert signed_in.post("/account/billing/keap/A/card").status_code == 400


def test_confirm_for_a_form_that_was_not_opened_sends_the_member_back(signed_in, mocked_responses):
    page = _open_card_page(signed_in, mocked_responses, "A")
    calls = len(mocked_responses.calls)
    done = signed_in.post("/account/billing/keap/B/card", data={"csrf_token": _csrf(page)})
    assert done.status_code == 302 and done.headers["Location"].endswith("/account/billing/keap/B/card")
    assert len(mocked_responses.calls) == calls


def test_no_card_number_or_session_key_in_the_database_or_the_logs(app, signed_in, mocked_responses, caplog):
    caplog.set_level(logging.DEBUG)
    page = _open_card_page(signed_in, mocked_responses)
    _new_card_in_keap(mocked_responses)
    for sub_id in ("A", "B"):
        mocked_responses.patch(f"{kd.BASE}/subscriptions/{sub_id}", json={})
    # Even a card number posted to us by mistake (or by a tampered page) goes nowhere.
    signed_in.post("/account/billing/keap/A/card", data={
        "csrf_token": _csrf(page), "card_number": kd.CARD_NUMBER, "cvc": "123"})

    secrets = (kd.CARD_NUMBER, kd.SESSION_KEY, kd.API_KEY)
    with app.app_context():
        found = []
        for table in db.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, (String, Text)) or c.name.endswith("refs")]
            if not columns:
                continue
            for row in db.session.execute(select(*columns)):
                for value in row:
                    if value is not None and any(s in str(value) for s in secrets):
                        found.append(table.name)
        assert found == []
        assert db.session.scalar(select(CardChange.id)) is not None  # the scan did see the change
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert not [s for s in secrets if s in logged]
    # The member's session cookie holds ids only, never the component's session key.
    with signed_in.session_transaction() as s:
        assert kd.SESSION_KEY not in str(dict(s))
