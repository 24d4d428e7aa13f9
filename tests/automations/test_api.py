"""The owner API for tags, event tag names and automation rules, including validation and the loop guard."""

from __future__ import annotations

from automations.triggers import fire
from extensions import db
from tests import factories


def _member(api, email="ann@example.com"):
    return api.post("/api/v1/members", json={"email": email, "name": "Ann"}).json


def test_tag_crud_and_members_by_tag(api):
    assert api.post("/api/v1/tags", json={"name": " VIP "}).status_code == 201
    dup = api.post("/api/v1/tags", json={"name": "vip"})
    assert dup.status_code == 409 and dup.json["code"] == "duplicate_tag"
    bad = api.post("/api/v1/tags", json={"name": "no spaces allowed"})
    assert bad.status_code == 422 and "name" in bad.json["errors"]
    assert api.post("/api/v1/tags", json={"name": "vip", "color": "red"}).status_code == 422

    ann, bob = _member(api), _member(api, "bob@example.com")
    added = api.post(f"/api/v1/members/{ann['id']}/tags", json={"name": "VIP"})
    assert added.status_code == 201
    assert added.json["name"] == "vip" and added.json["applied_by"] == "owner" and added.json["applied_at"]
    assert api.post(f"/api/v1/members/{ann['id']}/tags", json={"name": "vip"}).status_code == 200
    api.post(f"/api/v1/members/{bob['id']}/tags", json={"name": "vip"})

    listing = api.get("/api/v1/tags")
    assert [(t["name"], t["member_count"]) for t in listing.json] == [("vip", 2)]
    members = api.get("/api/v1/tags/vip/members?page_size=1")
    assert members.status_code == 200 and len(members.json) == 1
    assert '"total": 2' in members.headers["X-Pagination"]
    assert members.json[0]["member"]["email"] in {"ann@example.com", "bob@example.com"}
    assert api.get("/api/v1/tags/nope/members").json["code"] == "tag_not_found"

    assert [t["name"] for t in api.get(f"/api/v1/members/{ann['id']}/tags").json] == ["vip"]
    assert api.delete(f"/api/v1/members/{ann['id']}/tags/vip").status_code == 204
    gone = api.delete(f"/api/v1/members/{ann['id']}/tags/vip")
    assert gone.status_code == 404 and gone.json["code"] == "tag_not_found"
    assert api.post("/api/v1/members/9999/tags", json={"name": "vip"}).json["code"] == "member_not_found"

    assert api.delete("/api/v1/tags/vip").status_code == 204
    assert api.get(f"/api/v1/members/{bob['id']}/tags").json == []
    assert api.delete("/api/v1/tags/vip").status_code == 404


def test_tags_need_the_owner_key(client):
    assert client.get("/api/v1/tags").status_code == 401
    assert client.get("/api/v1/automations").json["code"] == "unauthorized"


def test_owner_tagging_runs_tag_automations(api):
    ann = _member(api)
    rule = api.post("/api/v1/automations", json={"name": "vip welcome", "trigger": "tag_added", "tag": "vip",
                                                 "actions": [{"type": "add_tag", "tag": "welcomed"}]})
    assert rule.status_code == 201, rule.json
    api.post(f"/api/v1/members/{ann['id']}/tags", json={"name": "vip"})
    assert [t["name"] for t in api.get(f"/api/v1/members/{ann['id']}/tags").json] == ["vip", "welcomed"]
    runs = api.get(f"/api/v1/automations/{rule.json['id']}/runs").json
    assert len(runs) == 1 and runs[0]["status"] == "succeeded" and runs[0]["trigger"] == "tag_added"
    assert runs[0]["actions_taken"] == [{"type": "add_tag", "tag": "welcomed", "outcome": "added"}]
    assert api.get(f"/api/v1/automations/runs/{runs[0]['id']}").json["id"] == runs[0]["id"]
    assert api.get("/api/v1/automations/runs?status=failed").json == []
    assert api.get("/api/v1/automations/runs/424242").status_code == 404


def test_tag_names_per_integration(api, app):
    with app.app_context():
        factories.make_course()
        integration = factories.make_integration()
        db.session.commit()
        integration_id = integration.id
    url = f"/api/v1/integrations/{integration_id}/tag-names"
    assert api.get(url).json["templates"]["purchased"] == "purchased-{product_id}"
    changed = api.put(url, json={"purchased": "tc-bought-{product_id}", "refunded": "", "cancelled": None})
    assert changed.status_code == 200
    assert changed.json["templates"]["purchased"] == "tc-bought-{product_id}"
    assert changed.json["templates"]["refunded"] == ""
    assert changed.json["templates"]["cancelled"] == "cancelled"
    bad = api.put(url, json={"purchased": "bought-{sku}"})
    assert bad.status_code == 422 and "purchased" in bad.json["errors"]
    assert api.put(url, json={"purchased": "Has Spaces"}).status_code == 422
    assert api.put(url, json={"colour": "x"}).status_code == 422
    assert api.get("/api/v1/integrations/999/tag-names").json["code"] == "integration_not_found"

    with app.app_context():
        member = factories.make_member()
        fire(db.session, "order_completed", member=member, event_key="o1", product_id="55",
             integration_id=integration_id)
        fire(db.session, "line_refunded", member=member, event_key="r1", product_id="55",
             integration_id=integration_id)
        db.session.commit()
        member_id = member.id
    assert [t["name"] for t in api.get(f"/api/v1/members/{member_id}/tags").json] == ["tc-bought-55"]


def test_rule_crud(api, app):
    with app.app_context():
        level = factories.make_level()
        db.session.commit()
        level_id = level.id
    body = {"name": "Gold buyers get the bonus", "trigger": "order_completed", "level_id": level_id,
            "actions": [{"type": "add_tag", "tag": "gold"}, {"type": "grant_level", "level_id": level_id,
                                                              "days": 30}]}
    created = api.post("/api/v1/automations", json=body)
    assert created.status_code == 201
    rule = created.json
    assert rule["actions"][1] == {"type": "grant_level", "level_id": level_id, "days": 30}
    assert rule["enabled"] is True and rule["default_key"] is None
    assert api.get(f"/api/v1/automations/{rule['id']}").json["name"] == body["name"]
    patched = api.patch(f"/api/v1/automations/{rule['id']}", json={"enabled": False, "product_id": 12})
    assert patched.json["enabled"] is False and patched.json["product_id"] == "12"
    listed = api.get("/api/v1/automations").json
    assert rule["id"] in [r["id"] for r in listed]
    assert {r["default_key"] for r in listed} >= {"payment_failed", "payment_recovered"}  # installed on first use
    assert api.delete(f"/api/v1/automations/{rule['id']}").status_code == 204
    assert api.get(f"/api/v1/automations/{rule['id']}").json["code"] == "automation_not_found"


def test_rule_validation_errors_are_clear_422s(api):
    def post(**overrides):
        body = {"name": "r", "trigger": "order_completed", "actions": [{"type": "add_tag", "tag": "x"}], **overrides}
        return api.post("/api/v1/automations", json=body)

    assert post(trigger="order_shipped").json["errors"]["trigger"]
    assert post(actions=[]).json["errors"]["actions"]
    r = post(actions=[{"type": "explode"}])
    assert r.status_code == 422 and "type" in r.json["errors"]["actions"]["0"]
    assert post(actions=[{"type": "add_tag"}]).json["errors"]["actions"]["0"]["tag"]
    assert post(actions=[{"type": "add_tag", "tag": "x", "extra": 1}]).json["errors"]["actions"]["0"]["extra"]
    assert post(actions=[{"type": "grant_level", "level_id": "1"}]).json["errors"]["actions"]["0"]["level_id"]
    assert post(actions=["add_tag"]).status_code == 422
    missing = post(actions=[{"type": "grant_level", "level_id": 4242}])
    assert missing.json["code"] == "invalid_automation"
    assert "4242" in missing.json["errors"]["actions"]["0"]["level_id"][0]
    assert post(level_id=4242).json["errors"]["level_id"]
    assert post(actions=[{"type": "send_webhook", "endpoint_id": 77}]).json["errors"]["actions"]["0"]["endpoint_id"]
    assert post(actions=[{"type": "send_email", "template": "nope"}]).json["errors"]["actions"]["0"]["template"]
    no_body = post(actions=[{"type": "send_email", "template": "automation_message", "subject": "Hi"}])
    assert no_body.json["errors"]["actions"]["0"]["body"]
    placeholder = post(actions=[{"type": "send_email", "template": "automation_message", "subject": "Hi {name}",
                                 "body": "{% if x %}"}])
    errors = placeholder.json["errors"]["actions"]["0"]
    assert "Unknown placeholder {name}" in errors["subject"][0] and errors["body"]
    not_owner_text = post(actions=[{"type": "send_email", "template": "payment_failed", "subject": "Hi"}])
    assert not_owner_text.json["errors"]["actions"]["0"]["subject"]
    both = post(actions=[{"type": "revoke_level", "after_days": 3, "after_grace_days": True}])
    assert both.json["errors"]["actions"]["0"]["after_days"]
    assert post(actions=[{"type": "send_email", "template": "payment_failed"}]).status_code == 201
    assert post(name="").status_code == 422


def test_a_rule_that_would_loop_is_rejected(api):
    a_adds_b = api.post("/api/v1/automations", json={"name": "A adds B", "trigger": "tag_added", "tag": "a",
                                                     "actions": [{"type": "add_tag", "tag": "b"}]})
    assert a_adds_b.status_code == 201
    b_adds_a = api.post("/api/v1/automations", json={"name": "B adds A", "trigger": "tag_added", "tag": "b",
                                                     "actions": [{"type": "add_tag", "tag": "a"}]})
    assert b_adds_a.status_code == 422
    assert b_adds_a.json["code"] == "automation_loop"
    assert "B adds A" in b_adds_a.json["message"] and "A adds B" in b_adds_a.json["message"]
    assert b_adds_a.json["errors"]["loop"] == ["this rule", a_adds_b.json["id"]]

    # Three rules in a ring, and an add/remove flip, are loops too; a chain that ends is not.
    assert api.post("/api/v1/automations", json={"name": "B adds C", "trigger": "tag_added", "tag": "b",
                                                 "actions": [{"type": "add_tag", "tag": "c"}]}).status_code == 201
    ring = api.post("/api/v1/automations", json={"name": "C adds A", "trigger": "tag_added", "tag": "c",
                                                 "actions": [{"type": "add_tag", "tag": "a"}]})
    assert ring.json["code"] == "automation_loop"
    flip = api.post("/api/v1/automations", json={"name": "removed then add", "trigger": "tag_removed", "tag": "c",
                                                 "actions": [{"type": "add_tag", "tag": "c"}]})
    assert flip.status_code == 201
    flop = api.post("/api/v1/automations", json={"name": "added then remove", "trigger": "tag_added", "tag": "c",
                                                 "actions": [{"type": "remove_tag", "tag": "c"}]})
    assert flop.json["code"] == "automation_loop"
    any_tag = api.post("/api/v1/automations", json={"name": "any tag adds x", "trigger": "tag_added",
                                                    "actions": [{"type": "add_tag", "tag": "x"}]})
    assert any_tag.json["code"] == "automation_loop"
    ok = api.post("/api/v1/automations", json={"name": "C adds done", "trigger": "tag_added", "tag": "c",
                                               "actions": [{"type": "add_tag", "tag": "done"}]})
    assert ok.status_code == 201

    # A disabled rule can exist; enabling it is checked again; and editing a rule into a loop is refused.
    disabled = api.post("/api/v1/automations", json={"name": "C adds A (off)", "trigger": "tag_added", "tag": "c",
                                                     "enabled": False, "actions": [{"type": "add_tag", "tag": "a"}]})
    assert disabled.status_code == 201
    enable = api.patch(f"/api/v1/automations/{disabled.json['id']}", json={"enabled": True})
    assert enable.json["code"] == "automation_loop"
    edit = api.patch(f"/api/v1/automations/{ok.json['id']}", json={"actions": [{"type": "add_tag", "tag": "a"}]})
    assert edit.json["code"] == "automation_loop"
    assert api.get(f"/api/v1/automations/{ok.json['id']}").json["actions"] == [{"type": "add_tag", "tag": "done"}]


def test_revoke_and_grant_revoked_loop_is_rejected(api, app):
    with app.app_context():
        level = factories.make_level()
        db.session.commit()
        level_id = level.id
    first = api.post("/api/v1/automations", json={"name": "revoked gold: tag", "trigger": "grant_revoked",
                                                  "level_id": level_id,
                                                  "actions": [{"type": "add_tag", "tag": "lapsed"}]})
    assert first.status_code == 201
    second = api.post("/api/v1/automations", json={"name": "lapsed: revoke gold", "trigger": "tag_added",
                                                   "tag": "lapsed",
                                                   "actions": [{"type": "revoke_level", "level_id": level_id}]})
    assert second.json["code"] == "automation_loop"


def test_rules_in_the_openapi_spec(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    for path in ("/api/v1/tags", "/api/v1/automations", "/api/v1/automations/runs", "/api/v1/webhook-endpoints",
                 "/api/v1/webhook-endpoints/{endpoint_id}/deliveries/{delivery_id}/redeliver",
                 "/api/v1/integrations/{integration_id}/tag-names", "/api/v1/tags/{name}/members"):
        assert path in paths



def test_catalog_lists_what_a_rule_can_use(api):
    body = api.get("/api/v1/automations/catalog").json
    assert "payment_failed" in body["triggers"] and "card_updated" in body["triggers"]
    assert body["actions"]["grant_level"] == ["level_id", "days"]
    emails = {e["name"]: e for e in body["emails"]}
    assert emails["automation_message"]["owner_text"] is True and "payment_failed" in emails
    assert "{member_name}" not in body["placeholders"] and "member_name" in body["placeholders"]


def test_deleting_a_rule_keeps_its_runs_in_the_log(api):
    ann = _member(api)
    rule = api.post("/api/v1/automations", json={"name": "tag vip", "trigger": "tag_added", "tag": "lead",
                                                 "actions": [{"type": "add_tag", "tag": "vip"}]}).json
    api.post(f"/api/v1/members/{ann['id']}/tags", json={"name": "lead"})
    assert api.delete(f"/api/v1/automations/{rule['id']}").status_code == 204
    runs = api.get(f"/api/v1/automations/runs?member_id={ann['id']}").json
    assert [(r["rule_name"], r["rule_id"]) for r in runs] == [("tag vip", None)]
