"""The OpenAPI document: valid OpenAPI 3, every route, our error shape."""

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
