"""Members, grants and the access check through the owner API."""

from datetime import UTC, datetime, timedelta

import pytest

import timeutil


def _setup_level(api, *, slug="gold", course_slug="course-one", duration_days=None):
    course = api.post("/api/v1/courses", json={"title": "C", "slug": course_slug, "status": "published"}).json
    return api.post("/api/v1/levels", json={"name": slug.title(), "slug": slug, "course_ids": [course["id"]],
                                            "duration_days": duration_days}).json


def test_member_email_is_normalised_and_found_in_any_case(api):
    created = api.post("/api/v1/members", json={"email": "  Jane.Buyer@Example.COM ", "name": "Jane"})
    assert created.status_code == 201
    assert created.json["email"] == "jane.buyer@example.com"
    found = api.get("/api/v1/members?email=JANE.BUYER@example.com").json
    assert [m["id"] for m in found] == [created.json["id"]]
    assert api.get("/api/v1/members?email=someone@example.com").json == []


def test_duplicate_email_in_another_case_is_409(api):
    assert api.post("/api/v1/members", json={"email": "user@example.com"}).status_code == 201
    again = api.post("/api/v1/members", json={"email": "User@Example.com"})
    assert again.status_code == 409 and again.json["code"] == "duplicate_email"
    assert len(api.get("/api/v1/members").json) == 1


def test_database_refuses_an_unnormalised_email(session):
    from sqlalchemy import text
    from sqlalchemy.exc import IntegrityError

    with pytest.raises(IntegrityError):
        session.execute(text("INSERT INTO members (email, name, login_nonce, created_at, updated_at) "
                             "VALUES ('Mixed@Example.com', '', '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"))
    session.rollback()


@pytest.mark.parametrize("body, field", [
    ({}, "email"),
    ({"email": "not-an-email"}, None),
    ({"email": "a@example.com", "name": 5}, "name"),
    ({"email": "a@example.com", "role": "admin"}, "role"),
])
def test_member_bad_input(api, body, field):
    response = api.post("/api/v1/members", json=body)
    assert response.status_code == 422
    if field:
        assert field in response.json["errors"]
    else:
        assert response.json["code"] == "invalid_email"


def test_member_update_and_search(api):
    member = api.post("/api/v1/members", json={"email": "a@example.com", "name": "Ann"}).json
    api.post("/api/v1/members", json={"email": "b@example.com", "name": "Bob"})
    updated = api.patch(f"/api/v1/members/{member['id']}",
                        json={"email": "Ann@NEW.example.com", "external_source": "Infusionsoft"})
    assert updated.status_code == 200
    assert updated.json["email"] == "ann@new.example.com" and updated.json["external_source"] == "Infusionsoft"
    assert [m["name"] for m in api.get("/api/v1/members?q=bob").json] == ["Bob"]
    clash = api.patch(f"/api/v1/members/{member['id']}", json={"email": "B@example.com"})
    assert clash.status_code == 409
    assert api.get("/api/v1/members/999").status_code == 404
    assert api.patch("/api/v1/members/999", json={"name": "x"}).json["code"] == "member_not_found"


def test_manual_grant_opens_the_course_until_it_ends(api):
    level = _setup_level(api)
    member = api.post("/api/v1/members", json={"email": "Reader@example.com"}).json
    assert api.get("/api/v1/access?email=reader@example.com&course=course-one").json == {
        "allowed": False, "levels": []}

    ends = (datetime.now(UTC) + timedelta(days=10)).isoformat()
    grant = api.post(f"/api/v1/members/{member['id']}/grants", json={"level_id": level["id"], "ends_at": ends})
    assert grant.status_code == 201
    assert grant.json["status"] == "active" and grant.json["source"]["kind"] == "manual"
    assert grant.json["gives_access"] is True

    check = api.get("/api/v1/access?email=READER@example.com&course=course-one").json
    assert check == {"allowed": True, "levels": ["gold"]}
    assert api.get("/api/v1/access?email=reader@example.com&course=other").json["allowed"] is False

    with timeutil.frozen(datetime.now(UTC) + timedelta(days=11)):
        assert api.get("/api/v1/access?email=reader@example.com&course=course-one").json["allowed"] is False


def test_level_duration_sets_the_end(api):
    level = _setup_level(api, duration_days=30)
    member = api.post("/api/v1/members", json={"email": "d@example.com"}).json
    grant = api.post(f"/api/v1/members/{member['id']}/grants", json={"level_id": level["id"]}).json
    starts = datetime.fromisoformat(grant["starts_at"])
    assert datetime.fromisoformat(grant["ends_at"]) - starts == timedelta(days=30)


def test_revoking_one_grant_leaves_another_grant_of_the_same_level(api):
    level = _setup_level(api)
    member = api.post("/api/v1/members", json={"email": "two@example.com"}).json
    first = api.post(f"/api/v1/members/{member['id']}/grants", json={"level_id": level["id"]}).json
    second = api.post(f"/api/v1/members/{member['id']}/grants", json={"level_id": level["id"]}).json

    revoked = api.post(f"/api/v1/grants/{first['id']}/revoke", json={"reason": "refund of order 1"})
    assert revoked.status_code == 200
    assert revoked.json["status"] == "revoked" and revoked.json["revoke_reason"] == "refund of order 1"
    assert api.get("/api/v1/access?email=two@example.com&course=course-one").json["allowed"] is True

    api.post(f"/api/v1/grants/{second['id']}/revoke", json={"reason": "done"})
    assert api.get("/api/v1/access?email=two@example.com&course=course-one").json["allowed"] is False
    again = api.post(f"/api/v1/grants/{second['id']}/revoke", json={"reason": "again"})
    assert again.status_code == 409 and again.json["code"] == "grant_already_revoked"
    statuses = [g["status"] for g in api.get(f"/api/v1/members/{member['id']}/grants").json]
    assert statuses == ["revoked", "revoked"]
    assert api.get(f"/api/v1/members/{member['id']}/grants?status=active").json == []


@pytest.mark.parametrize("body, field", [
    ({}, "level_id"),
    ({"level_id": "1"}, "level_id"),
    ({"level_id": 1, "ends_at": "tomorrow"}, "ends_at"),
    ({"level_id": 1, "ends_at": "2030-01-01T00:00:00"}, "ends_at"),
    ({"level_id": 1, "forever": True}, "forever"),
])
def test_grant_bad_input(api, body, field):
    member = api.post("/api/v1/members", json={"email": "g@example.com"}).json
    response = api.post(f"/api/v1/members/{member['id']}/grants", json=body)
    assert response.status_code == 422 and field in response.json["errors"]


def test_grant_dangling_ids(api):
    member = api.post("/api/v1/members", json={"email": "g@example.com"}).json
    unknown_level = api.post(f"/api/v1/members/{member['id']}/grants", json={"level_id": 999})
    assert unknown_level.status_code == 422 and unknown_level.json["code"] == "level_not_found"
    level = _setup_level(api)
    unknown_member = api.post("/api/v1/members/999/grants", json={"level_id": level["id"]})
    assert unknown_member.status_code == 404 and unknown_member.json["code"] == "member_not_found"
    assert api.post("/api/v1/grants/999/revoke", json={"reason": "x"}).status_code == 404
    assert api.post("/api/v1/grants/999/revoke", json={}).status_code in (404, 422)


def test_revoke_needs_a_reason(api):
    level = _setup_level(api)
    member = api.post("/api/v1/members", json={"email": "r@example.com"}).json
    grant = api.post(f"/api/v1/members/{member['id']}/grants", json={"level_id": level["id"]}).json
    response = api.post(f"/api/v1/grants/{grant['id']}/revoke", json={})
    assert response.status_code == 422 and "reason" in response.json["errors"]
    assert api.get(f"/api/v1/grants/{grant['id']}").json["status"] == "active"


def test_access_check_needs_email_and_course(api):
    response = api.get("/api/v1/access?email=a@example.com")
    assert response.status_code == 422 and "course" in response.json["errors"]
    assert api.get("/api/v1/access?email=nonsense&course=x").json == {"allowed": False, "levels": []}


def test_member_search_treats_wildcards_literally(api):
    api.post("/api/v1/members", json={"email": "a_b@example.com", "name": "Under Score"})
    api.post("/api/v1/members", json={"email": "axb@example.com", "name": "100% Sure"})
    assert [m["email"] for m in api.get("/api/v1/members?q=a_b").json] == ["a_b@example.com"]
    assert [m["email"] for m in api.get("/api/v1/members?q=100%25").json] == ["axb@example.com"]
    assert len(api.get("/api/v1/members?q=example").json) == 2
