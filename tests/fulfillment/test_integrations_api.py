"""Integrations and fulfillment rules through the owner API, and how a bought item resolves to levels."""

import pytest

from fulfillment import rules


@pytest.fixture
def published(api):
    return api.post("/api/v1/courses", json={"title": "C", "slug": "c", "status": "published"}).json


@pytest.fixture
def levels(api, published):
    return [api.post("/api/v1/levels", json={"name": n.title(), "slug": n, "course_ids": [published["id"]]}).json
            for n in ("basic", "pro", "bonus")]


def test_integration_needs_a_published_course(api):
    api.post("/api/v1/courses", json={"title": "Draft", "slug": "draft"})
    refused = api.post("/api/v1/integrations", json={"kind": "thrivecart", "name": "TC", "secret": "TESTSECRET"})
    assert refused.status_code == 422 and refused.json["code"] == "no_published_course"
    assert "publish" in refused.json["message"]
    assert api.get("/api/v1/integrations").json == []


def test_integration_create_returns_webhook_url_and_secret_once(api, published):
    created = api.post("/api/v1/integrations", json={"kind": "thrivecart", "name": "My cart", "secret": "TESTSECRET"})
    assert created.status_code == 201
    body = created.json
    assert body["webhook_url"] == f"http://coursegate.test/webhooks/thrivecart/{body['id']}"
    assert body["secret"] == "TESTSECRET" and body["has_secret"] is True
    assert body["accept_test_orders"] is False and body["cancel_access"] == "period_end"
    assert body["grace_days"] == 7

    read = api.get(f"/api/v1/integrations/{body['id']}").json
    assert "secret" not in read and read["has_secret"] is True
    assert all("secret" not in i for i in api.get("/api/v1/integrations").json)


def test_generic_integration_gets_a_generated_secret(api, published):
    body = api.post("/api/v1/integrations", json={"kind": "generic", "name": "SamCart bridge"}).json
    assert body["secret"].startswith("cgwh_") and len(body["secret"]) > 30
    assert body["webhook_url"].endswith(f"/webhooks/generic/{body['id']}")


def test_integration_settings_update(api, published):
    body = api.post("/api/v1/integrations", json={"kind": "stripe", "name": "Stripe"}).json
    assert body["has_secret"] is False
    changed = api.patch(f"/api/v1/integrations/{body['id']}", json={
        "secret": "whsec_new_secret_value", "accept_test_orders": True, "cancel_access": "immediately",
        "grace_days": 3, "card_update_url": "https://billing.example.com/portal"})
    assert changed.status_code == 200
    assert changed.json["has_secret"] is True and "secret" not in changed.json
    assert changed.json["cancel_access"] == "immediately" and changed.json["grace_days"] == 3
    assert api.delete(f"/api/v1/integrations/{body['id']}").status_code == 204
    assert api.get(f"/api/v1/integrations/{body['id']}").json["code"] == "integration_not_found"


@pytest.mark.parametrize("body, field", [
    ({"name": "x"}, "kind"),
    ({"kind": "shopify", "name": "x"}, "kind"),
    ({"kind": "thrivecart"}, "name"),
    ({"kind": "thrivecart", "name": "x", "grace_days": -1}, "grace_days"),
    ({"kind": "thrivecart", "name": "x", "cancel_access": "never"}, "cancel_access"),
    ({"kind": "thrivecart", "name": "x", "accept_test_orders": "perhaps"}, "accept_test_orders"),
    ({"kind": "thrivecart", "name": "x", "card_update_url": "not a url"}, "card_update_url"),
    ({"kind": "thrivecart", "name": "x", "secret": "short"}, "secret"),
    ({"kind": "thrivecart", "name": "x", "webhook": "y"}, "webhook"),
])
def test_integration_bad_input(api, published, body, field):
    response = api.post("/api/v1/integrations", json=body)
    assert response.status_code == 422 and field in response.json["errors"]


def test_rules_crud_and_bad_input(api, levels):
    integration = api.post("/api/v1/integrations", json={"kind": "thrivecart", "name": "TC",
                                                         "secret": "TESTSECRET"}).json
    base = f"/api/v1/integrations/{integration['id']}/rules"
    created = api.post(base, json={"product_id": 12, "level_ids": [levels[0]["id"], levels[1]["id"]]})
    assert created.status_code == 201
    rule = created.json
    assert rule["product_id"] == "12" and rule["pricing_option_id"] is None and rule["item_type"] == "product"
    assert rule["level_ids"] == [levels[0]["id"], levels[1]["id"]]

    duplicate = api.post(base, json={"product_id": "12", "level_ids": [levels[2]["id"]]})
    assert duplicate.status_code == 409 and duplicate.json["code"] == "duplicate_rule"
    # The same product as a bump, or for one pricing option, is a different rule.
    assert api.post(base, json={"product_id": "12", "item_type": "bump", "level_ids": [levels[2]["id"]]}).status_code == 201
    option = api.post(base, json={"product_id": "12", "pricing_option_id": "83322", "level_ids": [levels[1]["id"]]})
    assert option.status_code == 201
    again = api.post(base, json={"product_id": "12", "pricing_option_id": "83322", "level_ids": [levels[0]["id"]]})
    assert again.status_code == 409

    updated = api.patch(f"{base}/{rule['id']}", json={"level_ids": [levels[2]["id"]]})
    assert updated.status_code == 200 and updated.json["level_ids"] == [levels[2]["id"]]
    assert len(api.get(base).json) == 3
    assert api.delete(f"{base}/{rule['id']}").status_code == 204
    assert api.get(f"{base}/{rule['id']}").json["code"] == "rule_not_found"

    for body, field in [({"level_ids": [levels[0]["id"]]}, "product_id"),
                        ({"product_id": "1", "level_ids": []}, "level_ids"),
                        ({"product_id": "1"}, "level_ids"),
                        ({"product_id": "", "level_ids": [levels[0]["id"]]}, "product_id"),
                        ({"product_id": "1", "item_type": "addon", "level_ids": [levels[0]["id"]]}, "item_type"),
                        ({"product_id": "1", "level_ids": [levels[0]["id"]], "price": 5}, "price")]:
        response = api.post(base, json=body)
        assert response.status_code == 422 and field in response.json["errors"], body
    dangling = api.post(base, json={"product_id": "1", "level_ids": [999]})
    assert dangling.status_code == 422 and dangling.json["code"] == "level_not_found"
    assert api.post("/api/v1/integrations/999/rules", json={"product_id": "1", "level_ids": [levels[0]["id"]]}
                    ).status_code == 404


def test_rule_of_another_integration_is_not_found(api, levels):
    a = api.post("/api/v1/integrations", json={"kind": "thrivecart", "name": "A", "secret": "TESTSECRET"}).json
    b = api.post("/api/v1/integrations", json={"kind": "thrivecart", "name": "B", "secret": "TESTSECRET"}).json
    rule = api.post(f"/api/v1/integrations/{a['id']}/rules", json={"product_id": "1", "level_ids": [levels[0]["id"]]}).json
    assert api.get(f"/api/v1/integrations/{b['id']}/rules/{rule['id']}").status_code == 404


def test_specific_pricing_option_wins_over_all_options(app, api, levels):
    integration = api.post("/api/v1/integrations", json={"kind": "thrivecart", "name": "TC",
                                                         "secret": "TESTSECRET"}).json
    base = f"/api/v1/integrations/{integration['id']}/rules"
    api.post(base, json={"product_id": "12", "level_ids": [levels[0]["id"]]})
    api.post(base, json={"product_id": "12", "pricing_option_id": "yearly", "level_ids": [levels[1]["id"]]})
    api.post(base, json={"product_id": "12", "item_type": "bump", "level_ids": [levels[2]["id"]]})

    from extensions import db

    def slugs(item_type, option):
        with app.app_context():
            return [lv.slug for lv in rules.levels_for_item(db.session, integration["id"], item_type, "12", option)]

    assert slugs("product", "yearly") == ["pro"]
    assert slugs("product", "monthly") == ["basic"]
    assert slugs("product", None) == ["basic"]
    assert slugs("bump", "yearly") == ["bonus"]
    assert slugs("upsell", None) == []
