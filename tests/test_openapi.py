"""The OpenAPI document: valid OpenAPI 3, every route, our error shape."""

import re

import pytest
from openapi_spec_validator import validate


def test_spec_is_public_and_valid_openapi_3(client):
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    spec = response.json
    assert spec["openapi"].startswith("3.")
    validate(spec)


def test_spec_documents_every_api_route(app, client):
    spec = client.get("/api/v1/openapi.json").json
    documented = {(path, method.upper()) for path, ops in spec["paths"].items() for method in ops
                  if method in {"get", "post", "put", "patch", "delete"}}
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.rule == "/api/v1/openapi.json":
            continue
        path = rule.rule.replace("<int:", "{").replace("<", "{").replace(">", "}")
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            assert (path, method) in documented, f"{method} {path} is not in the spec"


def test_spec_documents_the_error_shape_and_bearer_auth(client):
    spec = client.get("/api/v1/openapi.json").json
    error = spec["components"]["schemas"]["Error"]
    assert error["properties"]["code"]["type"] == "string"
    assert {"code", "message"} <= set(error["required"])
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    assert spec["security"] == [{"bearerAuth": []}]
    create_course = spec["paths"]["/api/v1/courses"]["post"]
    assert {"401", "409", "422"} <= set(create_course["responses"])
    assert "404" in spec["paths"]["/api/v1/courses/{course_id}"]["get"]["responses"]
    assert "UNAUTHORIZED" in spec["components"]["responses"]


@pytest.mark.parametrize("schema,field,accepted,refused", [
    ("TagIn", "name", ["vip", "course-12:done", "a.b_c"], ["-vip", "vip-", "two words", "x" * 101]),
    ("MemberIn", "email", ["ada@example.com"], ["ada", "ada@example", "a b@example.com", "@example.com"]),
    ("WebhookEndpointIn", "url", ["https://hooks.example.com/in", "http://10.0.0.1:8080"],
     ["hooks.example.com/in", "ftp://example.com", "https://"]),
])
def test_the_spec_states_the_rules_the_api_checks(client, api, schema, field, accepted, refused):
    """A client generated from the spec sends what the API takes: the documented pattern and the API agree."""
    spec = client.get("/api/v1/openapi.json").json
    rule = spec["components"]["schemas"][schema]["properties"][field]
    pattern = re.compile(rule["pattern"])
    path, body = {"TagIn": ("/api/v1/tags", {}), "MemberIn": ("/api/v1/members", {}),
                  "WebhookEndpointIn": ("/api/v1/webhook-endpoints", {"events": ["*"]})}[schema]
    for value in accepted:
        assert pattern.search(value) and len(value) <= rule.get("maxLength", 10**6)
        response = api.post(path, json={**body, field: value})
        assert response.status_code == 201, (value, response.json)
    for value in refused:
        assert not (pattern.search(value) and len(value) <= rule.get("maxLength", 10**6)), value
        response = api.post(path, json={**body, field: value})
        assert response.status_code == 422, (value, response.json)


def test_the_spec_lists_the_events_an_endpoint_can_subscribe_to(client):
    from automations.models import TRIGGERS

    spec = client.get("/api/v1/openapi.json").json
    events = spec["components"]["schemas"]["WebhookEndpointIn"]["properties"]["events"]["items"]
    assert events["enum"] == ["*", *TRIGGERS]
