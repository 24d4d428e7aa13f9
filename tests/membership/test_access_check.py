"""GET /api/v1/access: the owner key and the answer in one statement, with the same answers and errors as every
owner call, and nothing cached: a revocation or a revoked key shows in the very next answer."""

from __future__ import annotations

from datetime import timedelta

import pytest
import requests

from sqlalchemy import select, update

import timeutil
from membership import grants
from membership.models import ApiKey, Grant
from tests import factories
from tests.helpers import committed


@pytest.fixture
def world(app):
    with committed(app) as session:
        painting = factories.make_course(slug="painting")
        factories.make_course(slug="sculpture")
        gold = factories.make_level(slug="gold", courses=[painting])
        silver = factories.make_level(slug="silver", courses=[painting])
        ada = factories.make_member(email="ada@example.com")
        factories.grant(ada, gold)
        later = factories.grant(ada, silver, starts_at=timeutil.now() + timedelta(days=2))
        ids = {"ada": ada.id, "later": later.id}
        first = factories.grant(ada, silver, ends_at=timeutil.now() + timedelta(days=1))
        ids["silver"] = first.id
        session.flush()
    return ids


def access(api, email="ada@example.com", course="painting", **kwargs):
    return api.get("/api/v1/access", query_string={"email": email, "course": course}, **kwargs)


def test_every_level_that_opens_the_course_is_listed_by_level_id(api, world):
    response = access(api)
    assert response.status_code == 200
    assert response.json == {"allowed": True, "levels": ["gold", "silver"]}
    assert response.content_type == "application/json"
    assert access(api, email="  ADA@Example.com ").json == {"allowed": True, "levels": ["gold", "silver"]}
    assert access(api, course="sculpture").json == {"allowed": False, "levels": []}
    assert access(api, course="no-such-course").json == {"allowed": False, "levels": []}
    assert access(api, email="bob@example.com").json == {"allowed": False, "levels": []}
    assert access(api, email="not an email").json == {"allowed": False, "levels": []}


def test_the_answer_follows_the_clock_and_the_grants_dates(api, world):
    with timeutil.frozen(timeutil.now() + timedelta(days=1, hours=1)):  # the first silver grant has ended
        assert access(api).json == {"allowed": True, "levels": ["gold"]}
    with timeutil.frozen(timeutil.now() + timedelta(days=3)):  # the later one has started
        assert access(api).json == {"allowed": True, "levels": ["gold", "silver"]}


def test_a_revocation_shows_in_the_next_answer(api, world, app):
    assert access(api).json["allowed"] is True
    for grant_id in (world["silver"], world["later"]):
        assert api.post(f"/api/v1/grants/{grant_id}/revoke", json={"reason": "refund"}).status_code == 200
    assert access(api).json == {"allowed": True, "levels": ["gold"]}
    with committed(app) as session:  # the last grant goes from outside the API, e.g. the cart's refund
        grant = session.scalars(select(Grant).where(Grant.status == "active", Grant.member_id == world["ada"])).one()
        grants.revoke(session, [grant], "refund")
    assert access(api).json == {"allowed": False, "levels": []}


def test_a_revoked_key_is_refused_at_once(api, world, app):
    assert access(api).status_code == 200
    with committed(app) as session:
        session.execute(update(ApiKey).values(revoked_at=timeutil.now()))
    response = access(api)
    assert response.status_code == 401
    assert response.json == {"code": "invalid_api_key", "message": "That API key is not valid or has been revoked."}


@pytest.mark.parametrize("headers, code", [
    ({}, "unauthorized"),
    ({"Authorization": "Basic abc"}, "unauthorized"),
    ({"Authorization": "Bearer "}, "unauthorized"),
    ({"Authorization": "Bearer cg_not-a-key"}, "invalid_api_key"),
])
def test_no_valid_key_is_a_401_whatever_the_query(client, world, headers, code):
    for query in ({"email": "ada@example.com", "course": "painting"}, {"email": "ada@example.com"}, {}):
        response = client.get("/api/v1/access", query_string=query, headers=headers)
        assert response.status_code == 401, query
        assert response.json["code"] == code
        assert "allowed" not in response.json


def test_a_missing_field_is_the_usual_422(api, world):
    response = api.get("/api/v1/access?course=painting&page=2")
    assert response.status_code == 422
    assert response.json == {"code": "validation_error", "message": "Some fields are missing or invalid.",
                             "errors": {"email": ["Missing data for required field."]}}
    assert api.get("/api/v1/access?email=ada@example.com&course=painting&other=1").json["allowed"] is True


def test_a_value_the_database_cannot_hold_is_a_422_not_a_500(api, world):
    response = access(api, course="paint\x00ing")
    if response.status_code == 200:  # SQLite stores the NUL; PostgreSQL's text cannot
        assert response.json == {"allowed": False, "levels": []}
    else:
        assert response.status_code == 422 and response.json["code"] == "value_out_of_range"


def test_the_spec_still_documents_the_query_and_the_answer(client):
    spec = client.get("/api/v1/openapi.json").json
    operation = spec["paths"]["/api/v1/access"]["get"]
    assert [(p["name"], p["in"], p["required"]) for p in operation["parameters"]] == [
        ("email", "query", True), ("course", "query", True)]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/AccessOut")
    assert {"401", "422"} <= set(operation["responses"])
    assert set(spec["components"]["schemas"]["AccessOut"]["properties"]) == {"allowed", "levels"}


@pytest.mark.postgres
def test_a_connection_the_server_dropped_is_replaced_without_an_error(app, world, live_server, api_key):
    """What the pool's pre-ping guards against elsewhere (PostgreSQL restarted, an idle connection cut):
    the access check finds its connection dead, and answers from a new one."""
    from sqlalchemy import text

    from extensions import db

    url = f"{live_server}/api/v1/access"
    headers = {"Authorization": f"Bearer {api_key}"}
    params = {"email": "ada@example.com", "course": "painting"}
    with requests.Session() as http:
        assert http.get(url, params=params, headers=headers, timeout=10).json()["allowed"] is True
        with app.app_context():
            with db.engine.connect() as conn:
                ended = conn.execute(text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle'")).scalar()
        assert ended >= 1
        for _ in range(3):
            response = http.get(url, params=params, headers=headers, timeout=10)
            assert response.status_code == 200 and response.json()["allowed"] is True
