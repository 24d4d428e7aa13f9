"""A course's URL (where it lives on the owner's site): set through the API, linked on /account, returned by
/api/v1/me and listed, linked, in the welcome email."""

from __future__ import annotations

from emails.models import OutboundEmail
from extensions import db
from membership import services
from tests import factories
from tests.helpers import committed, sign_in_as

URL = "https://school.example.com/courses/painting?ref=members&x=1"


def test_the_api_sets_changes_and_clears_a_course_url(api):
    created = api.post("/api/v1/courses", json={"title": "Painting", "slug": "painting", "status": "published",
                                               "url": URL})
    assert created.status_code == 201 and created.json["url"] == URL
    course_id = created.json["id"]
    assert api.get(f"/api/v1/courses/{course_id}").json["url"] == URL
    assert api.patch(f"/api/v1/courses/{course_id}", json={"url": None}).json["url"] is None
    for bad in ("javascript:alert(1)", "/relative/path", "x" * 10):
        refused = api.patch(f"/api/v1/courses/{course_id}", json={"url": bad})
        assert refused.status_code == 422 and "url" in refused.json["errors"], bad
    level = api.post("/api/v1/levels", json={"name": "Gold", "slug": "gold", "course_ids": [course_id]}).json
    assert level["courses"][0]["url"] is None


def test_account_links_each_course_and_me_returns_the_urls(app, client):
    with committed(app):
        painting = factories.make_course(title="Painting")
        painting.url = URL
        plain = factories.make_course(title="No Link Yet")
        member = factories.make_member(email="ada@example.com")
        factories.grant(member, factories.make_level(name="Gold", courses=[painting, plain]))
        member_id = member.id
    sign_in_as(app, client, member_id)
    page = client.get("/account").get_data(as_text=True)
    assert '<a href="https://school.example.com/courses/painting?ref=members&amp;x=1">Painting</a>' in page
    assert "<li>No Link Yet</li>" in page
    courses = client.get("/api/v1/me").json["levels"][0]["courses"]
    assert [(c["title"], c["url"]) for c in courses] == [("Painting", URL), ("No Link Yet", None)]


def test_the_welcome_email_names_what_was_bought_and_links_the_courses(app_ctx):
    painting = factories.make_course(title="Painting")
    painting.url = URL
    hidden = factories.make_course(title="Still a draft", status="draft")
    gold = factories.make_level(name="Gold", courses=[painting, hidden])
    member = factories.make_member(email="new@example.com")
    services.queue_welcome_email(db.session, member, [gold])
    db.session.commit()
    email = db.session.query(OutboundEmail).one()
    assert "with access to: Gold" in email.text_body
    assert f"- Painting: {URL}" in email.text_body and "Still a draft" not in email.text_body
    assert '<a href="https://school.example.com/courses/painting?ref=members&amp;x=1">Painting</a>' in email.html_body
