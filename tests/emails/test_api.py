"""Owner API: the outbox listing, one email, resend, and the owner's email text with checked placeholders."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

import timeutil

from emails import services as email_services
from emails.models import EmailStatus, OutboundEmail
from extensions import db
from membership import services
from tests import factories
from tests.helpers import committed, delivered_text, follow_link, login_link_in, path_of
from membership import grants


def queue(app, template="welcome", to="ada@example.com", **context):
    with committed(app) as session:
        member = services.member_by_email(session, to) or factories.make_member(email=to)
        defaults = {"welcome": {"member_name": "Ada", "login_url": services.login_url(member), "levels": ["Gold"]},
                    "login_link": {"member_name": "Ada", "login_url": services.login_url(member, purpose="login")},
                    "payment_failed": {"member_name": "Ada", "card_update_url": "https://cart.example.com/hub",
                                       "grace_days": 7, "levels": ["Gold"]}}[template]
        email = email_services.enqueue(session, template, to, {**defaults, **context}, member_id=member.id)
        email_id = email.id
    return email_id


def set_status(app, email_id, status):
    with committed(app) as session:
        session.get(OutboundEmail, email_id).status = status


def test_the_owner_api_needs_the_key(client):
    for path in ("/api/v1/emails", "/api/v1/emails/1", "/api/v1/email-templates", "/api/v1/email-templates/welcome"):
        response = client.get(path)
        assert response.status_code == 401 and response.json["code"] == "unauthorized"
    assert client.post("/api/v1/emails/1/resend").status_code == 401
    assert client.put("/api/v1/email-templates/welcome", json={"subject": "x"}).status_code == 401


def test_list_filters_and_paginates(app, api):
    first = queue(app, "welcome", "ada@example.com")
    second = queue(app, "login_link", "ada@example.com")
    third = queue(app, "welcome", "bob@example.com")
    set_status(app, third, EmailStatus.FAILED)

    everything = api.get("/api/v1/emails")
    assert everything.status_code == 200
    assert [e["id"] for e in everything.json] == [third, second, first]  # newest first
    assert json.loads(everything.headers["X-Pagination"])["total"] == 3
    assert everything.json[0]["status"] == "failed" and "text_body" not in everything.json[0]

    def ids(query):
        return [e["id"] for e in api.get(f"/api/v1/emails?{query}").json]

    assert ids("recipient=ADA@example.com") == [second, first]
    assert ids("template=welcome") == [third, first]
    assert ids("status=failed") == [third]
    assert ids("status=sent&template=login_link") == [second]
    assert ids("page=2&page_size=2") == [first]
    bad = api.get("/api/v1/emails?status=lost")
    assert bad.status_code == 422 and "status" in bad.json["errors"]


def test_one_email_shows_its_bodies_without_the_login_token(app, api):
    email_id = queue(app, "welcome")
    response = api.get(f"/api/v1/emails/{email_id}")
    assert response.status_code == 200
    email = response.json
    assert email["subject"] == "Welcome to Test Academy: your login link"
    assert email["status"] == "sent" and email["attempts"] == 1 and email["sent_at"]
    assert "[login link, made when sent]" in email["text_body"]
    assert 'href="[login link, made when sent]"' in email["html_body"]
    assert "/login/" not in email["text_body"] + email["html_body"] and "link made when sent:" not in email["text_body"]
    assert api.get("/api/v1/emails/999").json["code"] == "email_not_found"


def test_resend_a_sent_email_makes_a_new_row_and_sends_it(app, api):
    email_id = queue(app, "login_link")
    response = api.post(f"/api/v1/emails/{email_id}/resend")
    assert response.status_code == 202
    copy = response.json
    assert api.get(f"/api/v1/emails/{copy['id']}").json["status"] == "pending"  # not while the owner waits
    response.close()  # the response has gone out: delivery runs
    assert copy["id"] != email_id and copy["resent_from_id"] == email_id and copy["status"] == "pending"
    assert api.get(f"/api/v1/emails/{copy['id']}").json["status"] == "sent"  # delivered once the response went
    with app.app_context():
        rows = db.session.scalars(select(OutboundEmail).order_by(OutboundEmail.id)).all()
        assert [r.status for r in rows] == ["sent", "sent"] and rows[0].subject == rows[1].subject


def test_resend_a_failed_email(app, api):
    email_id = queue(app, "welcome")
    set_status(app, email_id, EmailStatus.FAILED)
    response = api.post(f"/api/v1/emails/{email_id}/resend")
    response.close()
    copy = response.json
    assert api.get(f"/api/v1/emails/{copy['id']}").json["status"] == "sent"
    assert api.get(f"/api/v1/emails/{email_id}").json["status"] == "failed"  # the record of what happened


def test_resend_a_pending_email_tries_it_now(app, api, monkeypatch):
    from emails import transport

    def down(**kwargs):
        raise ConnectionRefusedError("server down")

    monkeypatch.setattr(transport, "send", down)
    email_id = queue(app, "welcome")
    assert api.get(f"/api/v1/emails/{email_id}").json["attempts"] == 1
    monkeypatch.undo()
    response = api.post(f"/api/v1/emails/{email_id}/resend")
    assert response.status_code == 202 and response.json["id"] == email_id
    response.close()
    email = api.get(f"/api/v1/emails/{email_id}").json
    assert email["status"] == "sent" and email["attempts"] == 2
    assert api.post("/api/v1/emails/999/resend").status_code == 404


def _sent_link(app, email_id):
    return login_link_in(delivered_text(email_id, app))


@pytest.mark.parametrize("template,valid_for", [("welcome", timedelta(days=7)), ("login_link", timedelta(hours=1))])
def test_resending_a_login_email_after_its_link_expired_sends_a_new_link_that_signs_in(app, api, client, template,
                                                                                      valid_for):
    start = timeutil.now()
    with timeutil.frozen(start) as clock:
        email_id = queue(app, template)
        old = _sent_link(app, email_id)
        clock[0] = start + valid_for + timedelta(minutes=5)
        assert follow_link(client, path_of(old)).status_code == 410  # what the member would meet in the copied email
        response = api.post(f"/api/v1/emails/{email_id}/resend")
        assert response.status_code == 202
        response.close()
        copy = api.get(f"/api/v1/emails/{response.json['id']}").json
        assert copy["status"] == "sent" and copy["resent_from_id"] == email_id and copy["template"] == template
        new = _sent_link(app, copy["id"])
        assert new != old
        signed_in = follow_link(client, path_of(new))
    assert signed_in.status_code == 302 and signed_in.location == "/account"


def test_a_resent_welcome_email_goes_to_the_members_current_address_with_their_current_levels(app, api):
    email_id = queue(app, "welcome", levels=["Old level"])
    with committed(app) as session:
        member = services.member_by_email(session, "ada@example.com")
        member.email = "ada.new@example.com"
        grants.open_grant(session, member, factories.make_level(name="Platinum"))
    response = api.post(f"/api/v1/emails/{email_id}/resend")
    response.close()
    with app.app_context():
        copy = db.session.get(OutboundEmail, response.json["id"])
        assert copy.recipient == "ada.new@example.com"
        assert "Platinum" in copy.text_body and "Old level" not in copy.text_body


def test_a_login_email_of_a_deleted_member_cannot_be_resent(app, api):
    email_id = queue(app, "welcome")
    with committed(app) as session:
        session.delete(services.member_by_email(session, "ada@example.com"))
    response = api.post(f"/api/v1/emails/{email_id}/resend")
    assert response.status_code == 409 and response.json["code"] == "email_cannot_be_resent"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboundEmail)) == 1  # nothing queued


def test_other_emails_are_resent_as_they_were(app, api):
    email_id = queue(app, "payment_failed")
    response = api.post(f"/api/v1/emails/{email_id}/resend")
    response.close()
    with app.app_context():
        original, copy = (db.session.get(OutboundEmail, i) for i in (email_id, response.json["id"]))
        assert (copy.subject, copy.text_body, copy.html_body) == (original.subject, original.text_body,
                                                                  original.html_body)


# --- the owner's email text ------------------------------------------------------------------------

def test_templates_are_listed_with_their_placeholders(api):
    response = api.get("/api/v1/email-templates")
    assert response.status_code == 200
    welcome = next(t for t in response.json if t["name"] == "welcome")
    assert welcome["placeholders"] == ["courses", "levels", "login_url", "member_name", "site_name", "site_url"]
    assert welcome["required_placeholders"] == ["login_url"]
    assert welcome["default_subject"] == "Welcome to {site_name}: your login link"
    assert welcome["overridden"] is False and welcome["body"] is None
    assert api.get("/api/v1/email-templates/nope").json["code"] == "email_template_not_found"


def test_owner_text_is_used_for_the_next_email_and_can_be_removed(app, api):
    response = api.put("/api/v1/email-templates/welcome", json={
        "subject": "You're in, {member_name}!",
        "body": "Hello {member_name},\n\nClick to start: {login_url}\n\n{site_name}",
    })
    assert response.status_code == 200 and response.json["overridden"] is True
    assert api.get("/api/v1/email-templates/welcome").json["subject"] == "You're in, {member_name}!"

    email = api.get(f"/api/v1/emails/{queue(app, 'welcome')}").json
    assert email["subject"] == "You're in, Ada!"
    assert email["text_body"].startswith("Hello Ada,\n\nClick to start: [login link, made when sent]")

    subject_only = api.put("/api/v1/email-templates/welcome", json={"subject": "Hi {member_name}"})
    assert subject_only.json["body"] is None
    email = api.get(f"/api/v1/emails/{queue(app, 'welcome', 'bob@example.com')}").json
    assert email["subject"] == "Hi Ada" and "Welcome to Test Academy!" in email["text_body"]

    assert api.delete("/api/v1/email-templates/welcome").status_code == 204
    assert api.get("/api/v1/email-templates/welcome").json["overridden"] is False
    email = api.get(f"/api/v1/emails/{queue(app, 'welcome', 'cy@example.com')}").json
    assert email["subject"] == "Welcome to Test Academy: your login link"


@pytest.mark.parametrize("payload,code,field,words", [
    ({"body": "Hi {first_name}, {login_url}"}, "unknown_placeholder", "body", "{first_name}"),
    ({"subject": "Hi {password}"}, "unknown_placeholder", "subject", "{password}"),
    ({"body": "Hi {member_name}, welcome!"}, "missing_placeholder", "body", "{login_url}"),
    ({"body": "{% if x %}{login_url}{% endif %}"}, "invalid_placeholder", "body", "not a placeholder"),
    ({"body": "{login_url.__class__}"}, "invalid_placeholder", "body", "not a placeholder"),
    ({"body": "{login_url!r}"}, "invalid_placeholder", "body", "not a placeholder"),
    ({"body": "{login_url} and an unclosed {"}, "invalid_placeholder", "body", "literal brace"),
])
def test_bad_placeholders_are_refused(api, payload, code, field, words):
    response = api.put("/api/v1/email-templates/welcome", json=payload)
    assert response.status_code == 422
    assert response.json["code"] == code and response.json["message"]
    assert words in " ".join(response.json["errors"][field])
    assert api.get("/api/v1/email-templates/welcome").json["overridden"] is False


def test_template_input_is_validated(api):
    assert api.put("/api/v1/email-templates/welcome", json={}).json["code"] == "validation_error"
    unknown = api.put("/api/v1/email-templates/welcome", json={"subject": "x", "html": "<b>"})
    assert unknown.status_code == 422 and "html" in unknown.json["errors"]
    assert api.put("/api/v1/email-templates/nope", json={"subject": "x"}).status_code == 404
    assert api.delete("/api/v1/email-templates/nope").status_code == 404
    assert api.put("/api/v1/email-templates/welcome", json={"subject": 5}).status_code == 422


def test_openapi_documents_the_email_endpoints(client):
    from openapi_spec_validator import validate

    spec = client.get("/api/v1/openapi.json").json
    validate(spec)
    for path in ("/api/v1/emails", "/api/v1/emails/{email_id}", "/api/v1/emails/{email_id}/resend",
                 "/api/v1/email-templates", "/api/v1/email-templates/{name}"):
        assert path in spec["paths"], path
    assert set(spec["paths"]["/api/v1/email-templates/{name}"]) >= {"get", "put", "delete"}


def test_preview_renders_sample_values_without_saving(api):
    current = api.post("/api/v1/email-templates/welcome/preview", json={})
    assert current.status_code == 200
    assert current.json["subject"] == "Welcome to Test Academy: your login link"
    assert "Hi Sam Example," in current.json["text"] and "http://coursegate.test/example" in current.json["html"]

    trial = api.post("/api/v1/email-templates/payment_failed/preview",
                     json={"body": "Dear {member_name} <3, fix it here: {card_update_url}"}).json
    assert trial["text"].startswith("Dear Sam Example <3, fix it here: http://coursegate.test/example")
    assert "Dear Sam Example &lt;3" in trial["html"]
    assert api.get("/api/v1/email-templates/payment_failed").json["overridden"] is False

    bad = api.post("/api/v1/email-templates/payment_failed/preview", json={"body": "Dear {first_name}"})
    assert bad.status_code == 422 and bad.json["code"] == "unknown_placeholder"
    unknown, missing = bad.json["errors"]["body"]  # every problem is listed, the first one names the code
    assert "{first_name}" in unknown and "{card_update_url}" in missing


def test_preview_uses_the_stored_text_unless_given_other(api):
    api.put("/api/v1/email-templates/login_link", json={"subject": "Link for {member_name}"})
    assert api.post("/api/v1/email-templates/login_link/preview", json={}).json["subject"] == "Link for Sam Example"
    trial = api.post("/api/v1/email-templates/login_link/preview", json={"subject": "Try {site_name}"}).json
    assert trial["subject"] == "Try Test Academy"
