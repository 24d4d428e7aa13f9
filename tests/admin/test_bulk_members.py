"""Bulk changes from the members list: ticked rows or everyone matching a search, confirmed, then applied."""

from __future__ import annotations

import re

from sqlalchemy import select

from extensions import db
from membership import bulk
from membership.models import Grant, Member
from membership.tags import MemberTag, Tag
from tests import factories


def _seed(app) -> dict:
    with app.app_context():
        level = factories.make_level(name="Gold", slug="gold")
        school = [factories.make_member(email=f"pupil{n}@school.org", name=f"Pupil {n}") for n in range(5)]
        other = factories.make_member(email="someone@else.org", name="Someone")
        school[0].external_source = "infusionsoft"
        factories.grant(school[1], level)
        db.session.commit()
        return {"level": level.id, "school": [m.id for m in school], "other": other.id}


def test_every_member_matching_a_search_is_confirmed_then_changed(admin, app):
    ids = _seed(app)
    listing = admin.get("/admin/members?q=school.org").text
    assert "Select all 5 members matching “school.org”" in listing

    form = {"action": "set_external_source", "value": "infusionsoft", "everyone": "y", "q": "school.org",
            "level_id": "0"}
    confirm = admin.post("/admin/members/bulk", form)
    assert confirm.status_code == 200
    assert "This will change 4 members" in confirm.text and "Apply to 4 members" in confirm.text
    with app.app_context():  # the confirmation changed nothing
        assert db.session.scalar(select(Member.external_source).where(Member.id == ids["school"][1])) is None

    done = admin.post("/admin/members/bulk/apply", form, follow_redirects=True)
    assert "5 matched, 4 changed, 1 unchanged." in done.text
    with app.app_context():
        sources = dict(db.session.execute(select(Member.id, Member.external_source)).all())
    assert all(sources[i] == "infusionsoft" for i in ids["school"]) and sources[ids["other"]] is None


def test_ticked_rows_get_a_tag_and_a_level(admin, app):
    ids = _seed(app)
    ticked = ids["school"][:3]
    base = {"q": "", "level_id": "0", "member_id": [str(i) for i in ticked]}
    tag = admin.post("/admin/members/bulk/apply", base | {"action": "add_tag", "value": "VIP"}, follow_redirects=True)
    assert "3 matched, 3 changed, 0 unchanged." in tag.text
    grant = admin.post("/admin/members/bulk", base | {"action": "grant_level", "level_id": str(ids["level"])})
    assert "This will change 2 members" in grant.text  # ticked member 1 holds Gold already
    admin.post("/admin/members/bulk/apply", base | {"action": "grant_level", "level_id": str(ids["level"])})
    removed = admin.post("/admin/members/bulk/apply", base | {"action": "remove_tag", "value": "vip",
                                                              "member_id": [str(ticked[0])]}, follow_redirects=True)
    assert "1 matched, 1 changed, 0 unchanged." in removed.text
    with app.app_context():
        tagged = set(db.session.scalars(select(MemberTag.member_id).join(Tag).where(Tag.name == "vip")))
        holders = set(db.session.scalars(select(Grant.member_id).where(Grant.level_id == ids["level"])))
    assert tagged == set(ticked[1:]) and holders == set(ticked)


def test_refusals_are_shown_on_the_list(admin, app):
    _seed(app)
    nothing = admin.post("/admin/members/bulk", {"action": "add_tag", "value": "vip", "q": "", "level_id": "0"},
                         follow_redirects=True)
    assert "Tick the members to change" in nothing.text
    no_tag = admin.post("/admin/members/bulk", {"action": "remove_tag", "value": "never-made", "everyone": "y",
                                                "q": "", "level_id": "0"}, follow_redirects=True)
    assert "No tag has that name." in no_tag.text
    bad = admin.post("/admin/members/bulk", {"action": "add_tag", "value": "not a tag!", "everyone": "y",
                                             "q": "", "level_id": "0"}, follow_redirects=True)
    assert re.search(r"is not a usable tag name", bad.text)


def test_search_selection_is_one_statement_per_step(app):
    """'All matching' never lists ids: a match count and one set-based statement, whatever the size."""
    from sqlalchemy import event

    _seed(app)
    with app.app_context():
        statements = []
        engine = db.engine
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            result = bulk.apply(db.session, "add_tag", "school", search="school")
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        assert (result.matched, result.changed) == (5, 5)
        writes = [s for s in statements if s.lstrip().upper().startswith("INSERT INTO MEMBER_TAGS")]
        assert len(writes) == 1 and "SELECT" in writes[0].upper()
