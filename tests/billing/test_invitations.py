"""Update by invitation: the owner's API, the link (signed, single-use, expiring, revocable), the page with
no login for each payment-method situation, SMS through Twilio, and no token or card number kept anywhere."""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import pytest
from responses import matchers
from sqlalchemy import func, select, text

import timeutil
from billing.models import CardInvitation, Mandate, PaymentMethod
from emails.models import OutboundEmail
from extensions import db
from keap.models import CardChange
from tests.billing.cardkit import (CARDS, T0, capture_card, invitation_link, mails, member_by_email, subscribe,
                                   text_values)
from tests.factories import make_member

TWILIO = {"TWILIO_ACCOUNT_SID": "AC0123456789abcdef", "TWILIO_AUTH_TOKEN": "twilio-secret-token",
          "TWILIO_FROM": "+15005550006"}
TWILIO_URL = "https://api.twilio.com/2010-04-01/Accounts/AC0123456789abcdef/Messages.json"


@pytest.fixture
def clock(app_ctx):
    with timeutil.frozen(T0) as moment:
        yield moment


def _invite(api, member_id: int, **body):
    response = api.post(f"/api/v1/members/{member_id}/invitations", json={"expires_in_hours": 48, **body})
    response.close()  # the message leaves after the response
    return response


def _follow(client, link: str, card: str = "success_mc"):
    page = client.get(link)
    assert page.status_code == 200, page.text
    done = capture_card(client, client.post(link), card=card)
    assert done.status_code == 200, done.text
    return page, done


def test_no_payment_method_yet_the_page_adds_a_first_one(client, api, clock):
    member = make_member(email="new@example.com")
    db.session.commit()
    created = _invite(api, member.id)
    assert created.status_code == 201, created.json
    assert created.json["state"] == "sent" and created.json["payment_method"] is None
    assert created.json["channels"] == ["email"]
    mail = mails()[-1]
    assert "add a card for your subscription" in mail and "expires in 48 hours" in mail
    page, done = _follow(client, invitation_link())
    assert "There is no card on file yet" in page.text and "Add a card" in page.text
    assert "Thank you: your card is saved" in done.text
    (method,) = db.session.scalars(select(PaymentMethod).where(PaymentMethod.member_id == member.id))
    assert (method.brand, method.last4) == ("mastercard", "4444")
    state = api.get(f"/api/v1/invitations/{created.json['id']}").json
    assert state["state"] == "completed" and state["new_payment_method_id"] == method.id
    change = db.session.scalar(select(CardChange))
    assert change.changed_by == "invitation" and change.changed_by_ref == f"invitation:{created.json['id']}"


def test_one_payment_method_is_replaced_on_every_mandate(client, api, clock):
    (mandate,) = subscribe(client, "ada@example.com")
    member = member_by_email("ada@example.com")
    created = _invite(api, member.id)
    assert created.json["payment_method"]["last4"] == "4242"
    assert "the Visa ending 4242 on file" in mails()[-1]
    page, done = _follow(client, invitation_link())
    assert "Visa ending 4242" in page.text and "Replace this card" in page.text
    assert "4242424242424242" not in page.text and member.email not in page.text  # only the masked card
    db.session.expire_all()
    assert db.session.get(Mandate, mandate.id).payment_method.last4 == "4444"
    assert "now used for 1 subscription(s)" in done.text


def test_several_payment_methods_need_the_chosen_one_and_only_its_mandates_move(client, api, clock):
    first, second = subscribe(client, "ada@example.com", plans=2)
    member = member_by_email("ada@example.com")
    refused = _invite(api, member.id)
    assert refused.status_code == 422 and refused.json["code"] == "payment_method_required"
    assert "payment_method_id" in refused.json["errors"]
    created = _invite(api, member.id, payment_method_id=second.payment_method_id)
    assert created.status_code == 201 and created.json["payment_method"]["id"] == second.payment_method_id
    _follow(client, invitation_link())
    db.session.expire_all()
    assert db.session.get(Mandate, first.id).payment_method_id == first.payment_method_id
    assert db.session.get(Mandate, second.id).payment_method.last4 == "4444"


def test_another_members_payment_method_is_refused(client, api, clock):
    subscribe(client, "ada@example.com")
    (bobs,) = subscribe(client, "bob@example.com")
    ada = member_by_email("ada@example.com")
    response = _invite(api, ada.id, payment_method_id=bobs.payment_method_id)
    assert response.status_code == 404 and response.json["code"] == "payment_method_not_found"
    assert db.session.scalar(select(CardInvitation.id)) is None and mails() == []


def test_a_used_link_does_not_work_again(client, api, clock):
    subscribe(client, "ada@example.com")
    created = _invite(api, member_by_email("ada@example.com").id)
    link = invitation_link()
    _follow(client, link)
    again = client.get(link)
    assert again.status_code == 410 and "already been used" in again.text
    assert client.post(link).status_code == 410
    assert api.get(f"/api/v1/invitations/{created.json['id']}").json["state"] == "completed"


def test_a_scanners_visits_do_not_use_up_the_link(client, app, api, clock):
    """Opening the link only shows the page (its state becomes "opened"); saving a card is what uses it."""
    subscribe(client, "ada@example.com")
    _invite(api, member_by_email("ada@example.com").id)
    link = invitation_link()
    scanner = app.test_client()
    assert scanner.get(link).status_code == 200
    clock[0] = T0 + timedelta(hours=2)
    assert scanner.get(link).status_code == 200
    _, done = _follow(client, link)
    assert "Thank you" in done.text


def test_an_expired_link_does_not_work(client, api, clock):
    subscribe(client, "ada@example.com")
    member = member_by_email("ada@example.com")
    created = _invite(api, member.id, expires_in_hours=1)
    link = invitation_link()
    assert client.get(link).status_code == 200
    assert api.get(f"/api/v1/invitations/{created.json['id']}").json["state"] == "opened"
    clock[0] = T0 + timedelta(hours=1, minutes=1)
    expired = client.get(link)
    assert expired.status_code == 410 and "expired" in expired.text
    assert api.get(f"/api/v1/members/{member.id}/invitations").json[0]["state"] == "expired"
    revoke = api.post(f"/api/v1/invitations/{created.json['id']}/revoke")
    assert revoke.status_code == 409 and revoke.json["code"] == "invitation_closed"


def test_a_revoked_link_does_not_work(client, api, clock):
    subscribe(client, "ada@example.com")
    created = _invite(api, member_by_email("ada@example.com").id)
    link = invitation_link()
    revoked = api.post(f"/api/v1/invitations/{created.json['id']}/revoke")
    assert revoked.status_code == 200 and revoked.json["state"] == "revoked"
    page = client.get(link)
    assert page.status_code == 410 and "withdrawn" in page.text


def test_a_revoked_link_cannot_finish_a_capture_started_before(client, api, clock):
    subscribe(client, "ada@example.com")
    created = _invite(api, member_by_email("ada@example.com").id)
    link = invitation_link()
    start = client.post(link)
    api.post(f"/api/v1/invitations/{created.json['id']}/revoke")
    back = capture_card(client, start)
    assert back.status_code in (404, 410)
    assert db.session.scalar(select(CardChange.id)) is None


def test_tampered_and_unknown_links(client, api, clock):
    subscribe(client, "ada@example.com")
    _invite(api, member_by_email("ada@example.com").id)
    link = invitation_link()
    assert client.get(link[:-3] + "abc").status_code == 404
    assert client.get("/card-update/nonsense").status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"expires_in_hours": 0}, "expires_in_hours"),
    ({"expires_in_hours": 169}, "expires_in_hours"),
    ({"expires_in_hours": 24, "channels": ["fax"]}, "channels"),
    ({"expires_in_hours": 24, "colour": "red"}, "colour"),
])
def test_invalid_requests(api, clock, body, field):
    member = make_member()
    db.session.commit()
    response = api.post(f"/api/v1/members/{member.id}/invitations", json=body)
    assert response.status_code == 422 and field in response.json["errors"]


def test_unknown_member_and_invitation(api, clock):
    assert _invite(api, 999).status_code == 404
    assert api.get("/api/v1/invitations/999").json["code"] == "invitation_not_found"


def test_a_member_without_a_usable_email_cannot_be_invited(api, clock):
    member = make_member()
    db.session.commit()
    db.session.execute(text("UPDATE members SET email = '' WHERE id = :id"), {"id": member.id})
    db.session.commit()
    response = _invite(api, member.id)
    assert response.status_code == 422 and response.json["code"] == "no_email"


def test_sms_needs_a_configured_provider(api, clock):
    member = make_member(phone="+14155550123")
    db.session.commit()
    response = _invite(api, member.id, channels=["email", "sms"])
    assert response.status_code == 422 and response.json["code"] == "sms_not_configured"


def test_sms_through_twilio(make_app, app_config, mocked_responses):
    app = make_app(**TWILIO)
    client = app.test_client()
    from membership import auth

    with app.app_context():
        _, key = auth.create_api_key(db.session, "sms")
        phoneless = make_member(email="nophone@example.com")
        member = make_member(email="sms@example.com", name="Sam")
        db.session.commit()
        member_id, phoneless_id = member.id, phoneless.id
    headers = {"Authorization": f"Bearer {key}"}
    refused = client.post(f"/api/v1/members/{phoneless_id}/invitations", headers=headers,
                          json={"expires_in_hours": 24, "channels": ["email", "sms"]})
    assert refused.status_code == 422 and refused.json["code"] == "no_phone"
    assert client.patch(f"/api/v1/members/{member_id}", headers=headers,
                        json={"phone": "+14155550123"}).json["phone"] == "+14155550123"

    sent = mocked_responses.post(TWILIO_URL, status=201, json={"sid": "SM123", "status": "queued"}, match=[
        matchers.header_matcher({"Authorization": "Basic QUMwMTIzNDU2Nzg5YWJjZGVmOnR3aWxpby1zZWNyZXQtdG9rZW4="})])
    response = client.post(f"/api/v1/members/{member_id}/invitations", headers=headers,
                           json={"expires_in_hours": 24, "channels": ["sms", "email"]})
    response.close()
    assert response.status_code == 201 and response.json["channels"] == ["email", "sms"]
    assert sent.call_count == 1
    form = dict(pair.split("=", 1) for pair in mocked_responses.calls[0].request.body.split("&"))
    assert form["To"] == "%2B14155550123" and form["From"] == "%2B15005550006"
    from urllib.parse import unquote_plus

    body = unquote_plus(form["Body"])
    link = re.search(r"http://coursegate\.test(/card-update/[\w.\-]+)", body).group(1)
    with app.app_context():
        invitation = db.session.get(CardInvitation, response.json["id"])
        assert (invitation.sms_status, invitation.sms_ref, invitation.email_status) == ("sent", "SM123", "sent")
    assert client.get(link).status_code == 200  # the SMS link is the same working link


def test_twilio_failing_is_recorded_without_failing_the_invitation(make_app, mocked_responses):
    app = make_app(**TWILIO)
    client = app.test_client()
    from membership import auth

    with app.app_context():
        _, key = auth.create_api_key(db.session, "sms")
        member = make_member(email="sms@example.com", phone="+14155550123")
        db.session.commit()
        member_id = member.id
    mocked_responses.post(TWILIO_URL, status=400, json={"code": 21211, "message": "Invalid 'To' Phone Number"})
    response = client.post(f"/api/v1/members/{member_id}/invitations", headers={"Authorization": f"Bearer {key}"},
                           json={"expires_in_hours": 24, "channels": ["email", "sms"]})
    response.close()
    with app.app_context():
        invitation = db.session.get(CardInvitation, response.json["id"])
        assert (invitation.sms_status, invitation.email_status) == ("failed", "sent")


def test_keap_members_are_told_about_their_keap_subscriptions(client, api, clock):
    subscribe(client, "ada@example.com")
    member = member_by_email("ada@example.com")
    member.external_source = "Infusionsoft"
    db.session.commit()
    _invite(api, member.id)
    page = client.get(invitation_link())
    assert "Subscriptions you pay through Keap keep their own card" in page.text
    assert 'href="/account/billing"' in page.text


def test_the_owner_sees_every_invitation_with_its_state(client, api, clock):
    subscribe(client, "ada@example.com")
    member = member_by_email("ada@example.com")
    first = _invite(api, member.id).json
    api.post(f"/api/v1/invitations/{first['id']}/revoke")
    second = _invite(api, member.id).json
    client.get(invitation_link())
    third = _invite(api, member.id).json
    listed = api.get(f"/api/v1/members/{member.id}/invitations").json
    assert [(i["id"], i["state"]) for i in listed] == [(third["id"], "sent"), (second["id"], "opened"),
                                                       (first["id"], "revoked")]


def test_no_link_token_or_card_number_in_the_database_or_the_logs(client, api, clock, caplog):
    caplog.set_level(logging.DEBUG)
    subscribe(client, "ada@example.com")
    _invite(api, member_by_email("ada@example.com").id)
    link = invitation_link()
    token = link.rsplit("/", 1)[1]
    _follow(client, link)
    secrets = [token, token.split(".")[0], CARDS["success"], CARDS["success_mc"]]
    assert not [(table, value) for table, value in text_values() if any(s in value for s in secrets)]
    record = db.session.scalar(select(OutboundEmail).where(OutboundEmail.template == "invitation"))
    assert record.status == "sent" and "link removed" in record.text_body  # the outbox keeps a record, not the link
    logged = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    assert not [s for s in secrets if s in logged]


def test_an_invitation_email_cannot_be_resent_a_new_invitation_is_the_way(client, api, clock):
    subscribe(client, "ada@example.com")
    member_id = member_by_email("ada@example.com").id
    _invite(api, member_id)
    record = db.session.scalar(select(OutboundEmail).where(OutboundEmail.template == "invitation"))
    sent = len(mails())
    response = api.post(f"/api/v1/emails/{record.id}/resend")
    response.close()
    assert response.status_code == 409 and response.json["code"] == "invitation_not_resendable"
    assert f"/api/v1/members/{member_id}/invitations" in response.json["message"]
    # No copy, which would carry no link.
    assert db.session.scalar(select(func.count()).where(OutboundEmail.template == "invitation")) == 1
    assert len(mails()) == sent
