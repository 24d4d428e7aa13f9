"""Admin posts end their transaction at the view boundary (``transactions.commit_view``): the redirect or page
after the work commits it; a refusal shown to the owner leaves nothing behind, even when the service had
flushed part of its work before it refused."""

from __future__ import annotations

from markupsafe import escape
from sqlalchemy import select

from billing import plans as billing_plans
from billing.errors import PlanImmutable
from billing.models import Plan
from errors import CoursegateError
from extensions import db
from membership import grants, history
from membership import tags as member_tags
from membership.models import Course, Grant, Member
from membership.tags import MemberTag, Tag
from tests import factories


class HalfDone(CoursegateError):
    status = 409
    code = "half_done"
    message = "Refused after part of the work was flushed."


def _member_and_level() -> tuple[int, int]:
    member = factories.make_member(email="jane@example.com", name="Jane")
    level = factories.make_level(name="Gold")
    db.session.commit()
    return member.id, level.id


def test_a_refused_button_post_keeps_nothing_the_service_flushed(admin, app, monkeypatch):
    with app.app_context():
        level = factories.make_level(name="Gold")
        plan = billing_plans.create_plan(db.session, name="Gold monthly", level_id=level.id, amount=4900,
                                         currency="usd", interval_unit="month")
        db.session.commit()
        plan_id = plan.id

    def pause_then_refuse(session, plan):
        plan.name = "Half paused"
        session.flush()
        raise PlanImmutable()

    monkeypatch.setattr(billing_plans, "pause_plan", pause_then_refuse)
    response = admin.post(f"/admin/plans/{plan_id}/pause")
    assert response.status_code == 302
    assert str(escape(PlanImmutable.message)) in admin.get(response.location).text
    with app.app_context():
        plan = db.session.get(Plan, plan_id)
        assert (plan.name, plan.state) == ("Gold monthly", "active")


def test_a_refused_form_shown_again_keeps_nothing_the_service_flushed(admin, app, monkeypatch):
    with app.app_context():
        member_id, level_id = _member_and_level()

    real_open = grants.open_grant

    def grant_then_refuse(session, member, level, **kwargs):
        real_open(session, member, level, **kwargs)
        session.flush()
        raise HalfDone()

    monkeypatch.setattr(grants, "open_grant", grant_then_refuse)
    response = admin.post(f"/admin/members/{member_id}/grants", {"level_id": str(level_id), "note": "x"})
    assert response.status_code == 422 and HalfDone.message in response.text
    with app.app_context():
        assert db.session.scalars(select(Grant)).all() == []


def test_a_refused_profile_keeps_nothing_the_service_flushed(admin, app, monkeypatch):
    with app.app_context():
        member_id, _ = _member_and_level()

    def rename_then_refuse(session, member, data, *, by):
        member.name = "Half saved"
        session.flush()
        raise HalfDone()

    monkeypatch.setattr(history, "update_profile", rename_then_refuse)
    response = admin.post(f"/admin/members/{member_id}/profile", {"email": "jane@example.com", "name": "New"})
    assert response.status_code == 422
    with app.app_context():
        assert db.session.get(Member, member_id).name == "Jane"


def test_a_refused_tag_keeps_nothing_the_service_flushed(admin, app, monkeypatch):
    with app.app_context():
        member_id, _ = _member_and_level()
    real_tag = member_tags.tag_member

    def tag_then_refuse(session, member, name, **kwargs):
        real_tag(session, member, name, **kwargs)
        session.flush()
        raise HalfDone()

    monkeypatch.setattr(member_tags, "tag_member", tag_then_refuse)
    response = admin.post(f"/admin/members/{member_id}/tags", {"tag": "vip"})
    assert response.status_code == 302
    assert HalfDone.message in admin.get(response.location).text
    with app.app_context():
        assert db.session.scalars(select(MemberTag)).all() == []
        assert db.session.scalars(select(Tag)).all() == []


def test_what_a_post_did_is_committed_by_the_time_the_redirect_arrives(admin, app):
    with app.app_context():
        member_id, level_id = _member_and_level()
        course = factories.make_course(title="Intro", status="draft")
        db.session.commit()
        course_id = course.id

    assert admin.post(f"/admin/courses/{course_id}/publish").status_code == 302
    assert admin.post(f"/admin/members/{member_id}/grants", {"level_id": str(level_id)}).status_code == 302
    assert admin.post(f"/admin/members/{member_id}/tags", {"tag": "vip"}).status_code == 302
    # A session of its own sees only what the requests committed.
    with app.app_context():
        assert db.session.get(Course, course_id).status == "published"
        assert [g.level_id for g in db.session.scalars(select(Grant))] == [level_id]
        assert [t.member_id for t in db.session.scalars(select(MemberTag))] == [member_id]

    assert admin.post(f"/admin/members/{member_id}/tags/remove", {"name": "vip"}).status_code == 302
    with app.app_context():
        assert db.session.scalars(select(MemberTag)).all() == []
