"""What the lead wires into /account/billing and GET /api/v1/me/subscriptions: the page part, the JSON, the email."""

from keap import subscriptions
from keap.schemas import api_payload
from tests.keap import keapdata as kd


def _sign_in(client, app, **fields):
    from extensions import db
    from tests.factories import make_member

    with app.app_context():
        member = make_member(email="jane@example.com", name="Jane", **fields)
        db.session.commit()
        member_id = member.id
    with client.session_transaction() as s:
        s["member_id"] = member_id
    return member_id


def test_billing_part_lists_keap_rows_with_edit_card(app, client, mocked_responses):
    _sign_in(client, app, external_source="infusionsoft")
    kd.standard_member_setup(mocked_responses, "jane@example.com")
    html = client.get("/account/billing/keap").text
    assert "Premium Widget" in html and "2024-06-21" in html and "49.00 USD every month" in html
    assert "Visa ending 4242, expires 07/2030" in html
    assert 'href="/account/billing/keap/9001/card">Edit card' in html


def test_billing_part_says_plainly_when_keap_is_down(app, client, mocked_responses):
    _sign_in(client, app, external_source="keap")
    for _ in range(3):
        mocked_responses.get(f"{kd.BASE}/contacts", status=503, json=kd.error(503, "down", "UNAVAILABLE"))
    page = client.get("/account/billing/keap")
    assert page.status_code == 200
    assert "could not be loaded right now" in page.text


def test_billing_part_is_empty_for_members_not_from_keap(app, client, mocked_responses):
    _sign_in(client, app, external_source=None)
    page = client.get("/account/billing/keap")
    assert page.status_code == 200 and "could not be loaded" not in page.text and "<table" not in page.text
    assert len(mocked_responses.calls) == 0


def test_matched_contact_is_remembered_by_the_page(app, client, mocked_responses):
    member_id = _sign_in(client, app, external_source="keap")
    kd.standard_member_setup(mocked_responses, "jane@example.com")
    client.get("/account/billing/keap")
    from extensions import db
    from membership.models import Member

    with app.app_context():
        assert db.session.get(Member, member_id).keap_contact_id == "101"


def test_json_rows_and_source_status(app, session, keap_member, mocked_responses):
    member = keap_member()
    kd.standard_member_setup(mocked_responses, member.email)
    with app.test_request_context():
        payload = api_payload(subscriptions.rows_for_member(session, member))
    assert payload == {
        "subscriptions": [{
            "source": "keap", "id": "9001", "product_name": "Premium Widget", "started_at": "2024-05-21",
            "renews_on": "2024-06-21", "amount": "49.00", "currency": "USD", "interval_unit": "month",
            "interval_count": 1, "card": {"brand": "Visa", "last4": "4242", "exp_month": 7, "exp_year": 2030},
            "edit_card_url": "/account/billing/keap/9001/card"}],
        "sources": [{"source": "keap", "status": "ok", "message": None}],
    }


def test_json_when_keap_is_down(session, keap_member, mocked_responses):
    member = keap_member()
    for _ in range(3):
        kd.on_keap_down(mocked_responses)
    payload = api_payload(subscriptions.rows_for_member(session, member))
    assert payload["subscriptions"] == []
    assert payload["sources"][0]["status"] == "unavailable"
    assert "could not be loaded right now" in payload["sources"][0]["message"]


def test_webhook_can_remember_a_contact_for_the_billing_view(session, keap_member, mocked_responses):
    member = keap_member(email="jane@example.com")
    assert subscriptions.remember_contact(session, member, "555", matched_by="campaign")
    assert not subscriptions.remember_contact(session, member, "555", matched_by="campaign")
    # No search by email: the campaign said which contact this is.
    kd.on_subscriptions(mocked_responses, "555", [kd.subscription("1", "555")])
    kd.on_payment_methods(mocked_responses, "555", [])
    kd.on_product(mocked_responses, "789", "Premium Widget")
    [row] = subscriptions.rows_for_member(session, member).rows
    assert row.contact_id == "555" and row.card is None


def test_card_updated_email_renders(session):
    from emails import rendering

    subject, text, html = rendering.render("card_updated", {
        "member_name": "Jane", "brand": "Amex", "last4": "0005", "expiry": "03/2031", "old_last4": "4242",
        "subscriptions": ["Premium Widget", "Coaching Club"], "changed_at": "21 November 2026, 09:00 UTC"})
    assert subject == "Your card for Test Academy has been updated"
    assert text.startswith("Hi Jane,\n\nYour Amex ending 0005 (expires 03/2031) is now the card for:\n"
                           "- Premium Widget\n- Coaching Club\n")
    assert "It replaces the card ending 4242. The change was made on 21 November 2026, 09:00 UTC." in text
    assert "<li>Coaching Club</li>" in html and "ending <strong>0005</strong>" in html
