"""The admin fields behind what members see: a course's URL, a cart's subscription-management link and the
"access added" email switch."""

from __future__ import annotations

from sqlalchemy import select

from extensions import db
from fulfillment.models import Integration
from membership.models import Course
from tests import factories


def test_a_course_url_is_saved_shown_again_and_checked(admin, app):
    created = admin.post("/admin/courses/new", {"title": "Pro", "slug": "pro", "status": "published",
                                                "url": "https://school.example.com/pro"})
    assert created.status_code == 302
    with app.app_context():
        course = db.session.scalar(select(Course))
        assert course.url == "https://school.example.com/pro"
        course_id = course.id
    form = admin.get(f"/admin/courses/{course_id}").text
    assert 'value="https://school.example.com/pro"' in form and "Course URL" in form
    bad = admin.post(f"/admin/courses/{course_id}", {"title": "Pro", "slug": "pro", "status": "published",
                                                     "url": "not a url"})
    assert bad.status_code == 422 and "Invalid URL" in bad.text
    admin.post(f"/admin/courses/{course_id}", {"title": "Pro", "slug": "pro", "status": "published", "url": ""})
    with app.app_context():
        assert db.session.get(Course, course_id).url is None


def test_integration_form_sets_the_management_link_and_the_access_email(admin, app):
    with app.app_context():
        factories.make_course()
        integration_id = factories.make_integration().id
        db.session.commit()
    response = admin.post(f"/admin/integrations/{integration_id}", {
        "name": "Shop", "secret": "", "cancel_access": "period_end", "grace_days": "7",
        "manage_subscriptions_url": "https://shop.example.com/hub", "access_added_email": "y"})
    assert response.status_code == 302
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        assert integration.manage_subscriptions_url == "https://shop.example.com/hub"
        assert integration.access_added_email is True
    page = admin.get(f"/admin/integrations/{integration_id}").text
    assert "Subscription management page" in page and "Email existing members" in page
