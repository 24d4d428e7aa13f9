"""Courses and levels through the owner API."""

import pytest


def test_api_requires_a_valid_key(client, api_key):
    assert client.get("/api/v1/courses").status_code == 401
    assert client.get("/api/v1/courses").json["code"] == "unauthorized"
    bad = client.get("/api/v1/courses", headers={"Authorization": "Bearer cg_not-a-real-key"})
    assert bad.status_code == 401 and bad.json["code"] == "invalid_api_key"
    basic = client.get("/api/v1/courses", headers={"Authorization": f"Basic {api_key}"})
    assert basic.status_code == 401
    assert client.get("/api/v1/courses", headers={"Authorization": f"Bearer {api_key}"}).status_code == 200


def test_revoked_key_is_refused(app, client, api_key, runner):
    result = runner.invoke(args=["api-keys", "list"])
    key_id = result.output.split()[0].lstrip("#")
    assert runner.invoke(args=["api-keys", "revoke", key_id]).exit_code == 0
    response = client.get("/api/v1/courses", headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code == 401


def test_course_lifecycle(api):
    created = api.post("/api/v1/courses", json={"title": "Course One", "slug": "course-one"})
    assert created.status_code == 201
    course = created.json
    assert course["status"] == "draft" and course["slug"] == "course-one"

    assert api.get(f"/api/v1/courses/{course['id']}").json["title"] == "Course One"
    published = api.patch(f"/api/v1/courses/{course['id']}", json={"status": "published"})
    assert published.status_code == 200 and published.json["status"] == "published"
    assert published.json["title"] == "Course One"

    listed = api.get("/api/v1/courses?status=published")
    assert [c["slug"] for c in listed.json] == ["course-one"]
    assert '"total": 1' in listed.headers["X-Pagination"]
    assert api.get("/api/v1/courses?status=draft").json == []

    assert api.delete(f"/api/v1/courses/{course['id']}").status_code == 204
    missing = api.get(f"/api/v1/courses/{course['id']}")
    assert missing.status_code == 404 and missing.json["code"] == "course_not_found"


@pytest.mark.parametrize("body, field", [
    ({"slug": "x"}, "title"),
    ({"title": "X"}, "slug"),
    ({"title": "X", "slug": "Not A Slug"}, "slug"),
    ({"title": "X", "slug": "x", "status": "live"}, "status"),
    ({"title": 12, "slug": "x"}, "title"),
    ({"title": "X", "slug": "x", "colour": "red"}, "colour"),
])
def test_course_bad_input_is_422_with_the_field(api, body, field):
    response = api.post("/api/v1/courses", json=body)
    assert response.status_code == 422
    assert response.json["code"] == "validation_error"
    assert field in response.json["errors"]


def test_unparseable_body_is_400(api):
    response = api.post("/api/v1/courses", data="{not json", headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and response.json["code"] == "invalid_json"


def test_duplicate_course_slug_is_409(api):
    assert api.post("/api/v1/courses", json={"title": "A", "slug": "same"}).status_code == 201
    again = api.post("/api/v1/courses", json={"title": "B", "slug": "same"})
    assert again.status_code == 409 and again.json["code"] == "duplicate_slug"
    other = api.post("/api/v1/courses", json={"title": "C", "slug": "other"}).json
    renamed = api.patch(f"/api/v1/courses/{other['id']}", json={"slug": "same"})
    assert renamed.status_code == 409
    assert api.get(f"/api/v1/courses/{other['id']}").json["slug"] == "other"


def test_level_lifecycle(api):
    one = api.post("/api/v1/courses", json={"title": "One", "slug": "one", "status": "published"}).json
    two = api.post("/api/v1/courses", json={"title": "Two", "slug": "two"}).json
    created = api.post("/api/v1/levels", json={"name": "Gold", "slug": "gold", "course_ids": [one["id"], two["id"]],
                                               "duration_days": 30})
    assert created.status_code == 201
    level = created.json
    assert level["course_ids"] == [one["id"], two["id"]] and level["duration_days"] == 30
    assert [c["slug"] for c in level["courses"]] == ["one", "two"]

    changed = api.put(f"/api/v1/levels/{level['id']}", json={"course_ids": [two["id"]], "duration_days": None})
    assert changed.status_code == 200
    assert changed.json["course_ids"] == [two["id"]] and changed.json["duration_days"] is None
    assert [lv["slug"] for lv in api.get("/api/v1/levels").json] == ["gold"]
    assert api.delete(f"/api/v1/levels/{level['id']}").status_code == 204
    assert api.get(f"/api/v1/levels/{level['id']}").status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"slug": "gold"}, "name"),
    ({"name": "Gold", "slug": "gold", "course_ids": "1"}, "course_ids"),
    ({"name": "Gold", "slug": "gold", "course_ids": ["one"]}, "course_ids"),
    ({"name": "Gold", "slug": "gold", "duration_days": 0}, "duration_days"),
    ({"name": "Gold", "slug": "gold", "duration_days": "30"}, "duration_days"),
    ({"name": "Gold", "slug": "gold", "courses": []}, "courses"),
])
def test_level_bad_input(api, body, field):
    response = api.post("/api/v1/levels", json=body)
    assert response.status_code == 422 and field in response.json["errors"]


def test_level_with_dangling_course_is_422_and_creates_nothing(api):
    response = api.post("/api/v1/levels", json={"name": "Gold", "slug": "gold", "course_ids": [999]})
    assert response.status_code == 422 and response.json["code"] == "course_not_found"
    assert "course_ids" in response.json["errors"]
    assert api.get("/api/v1/levels").json == []


def test_duplicate_level_slug_is_409(api):
    assert api.post("/api/v1/levels", json={"name": "Gold", "slug": "gold"}).status_code == 201
    again = api.post("/api/v1/levels", json={"name": "Gold 2", "slug": "gold"})
    assert again.status_code == 409 and again.json["code"] == "duplicate_slug"


def test_level_with_grants_cannot_be_deleted(api):
    level = api.post("/api/v1/levels", json={"name": "Gold", "slug": "gold"}).json
    member = api.post("/api/v1/members", json={"email": "a@example.com"}).json
    assert api.post(f"/api/v1/members/{member['id']}/grants", json={"level_id": level["id"]}).status_code == 201
    refused = api.delete(f"/api/v1/levels/{level['id']}")
    assert refused.status_code == 409 and refused.json["code"] == "level_in_use"


def test_oversized_body_is_413_json(api):
    response = api.post("/api/v1/courses", data=b"x" * (3 * 1024 * 1024), headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json["code"] == "payload_too_large"
