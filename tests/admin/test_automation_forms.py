"""Automation rules and webhook endpoints built in the admin, through the API's schemas and services."""

from __future__ import annotations

import re

from markupsafe import escape

from automations.models import AutomationRule, WebhookDelivery, WebhookEndpoint
from extensions import db
from tests import factories


def _rule(**fields) -> dict:
    """A rule form post: the rule's fields plus ``steps`` as a list of action-row dicts."""
    steps = fields.pop("steps", [])
    body = {"name": "", "trigger": "tag_added", "level_id": "0", "product_id": "", "tag": "", "enabled": "y"}
    body.update(fields)
    for index in range(max(4, len(steps))):
        step = steps[index] if index < len(steps) else {}
        body.update({f"actions-{index}-{key}": value for key, value in
                     ({"type": "", "level_id": "0", "endpoint_id": "0", "template": ""} | step).items()})
    return body


def _endpoint(admin, url="https://crm.example.com/hook", events=("*",)) -> int:
    created = admin.post("/admin/automations/endpoints/new", {"url": url, "description": "CRM", "events": list(events),
                                                               "enabled": "y", "secret": ""})
    assert created.status_code == 200 and "Copy the signing secret now" in created.text
    return int(re.search(r"/admin/automations/endpoints/(\d+)", created.text).group(1))


def test_owner_builds_edits_switches_and_deletes_a_rule(admin, app):
    with app.app_context():
        level = factories.make_level(name="Gold", slug="gold")
        db.session.commit()
        level_id = level.id
    endpoint_id = _endpoint(admin)
    with app.app_context():
        assert db.session.get(WebhookEndpoint, endpoint_id).secret.startswith("cgwhsec_")

    created = admin.post("/admin/automations/rules/new", _rule(
        name="VIP: revoke, email, tell the CRM", tag="vip", steps=[
            {"type": "revoke_level", "level_id": str(level_id), "reason": "vip-tag"},
            {"type": "send_email", "template": "automation_message", "subject": "Hi {member_name}",
             "body": "You are VIP now."},
            {"type": "send_webhook", "endpoint_id": str(endpoint_id)}]), follow_redirects=True)
    assert "Rule “VIP: revoke, email, tell the CRM” created." in created.text
    with app.app_context():
        rule = db.session.query(AutomationRule).one()
        assert (rule.trigger, rule.tag, rule.enabled) == ("tag_added", "vip", True)
        assert rule.actions == [{"type": "revoke_level", "level_id": level_id, "reason": "vip-tag"},
                                {"type": "send_email", "template": "automation_message", "subject": "Hi {member_name}",
                                 "body": "You are VIP now."},
                                {"type": "send_webhook", "endpoint_id": endpoint_id}]
        rule_id = rule.id

    edit = admin.get(f"/admin/automations/rules/{rule_id}").text
    assert 'value="VIP: revoke, email, tell the CRM"' in edit and "You are VIP now." in edit
    saved = admin.post(f"/admin/automations/rules/{rule_id}", _rule(
        name="VIP: tell the CRM", tag="vip", steps=[{"type": "send_webhook", "endpoint_id": str(endpoint_id)}]),
        follow_redirects=True)
    assert "Rule “VIP: tell the CRM” saved." in saved.text

    off = admin.post(f"/admin/automations/rules/{rule_id}/enabled", {"enabled": "0"}, follow_redirects=True)
    assert "Rule “VIP: tell the CRM” disabled." in off.text
    with app.app_context():
        rule = db.session.get(AutomationRule, rule_id)
        assert rule.enabled is False and rule.actions == [{"type": "send_webhook", "endpoint_id": endpoint_id}]
    gone = admin.post(f"/admin/automations/rules/{rule_id}/delete", follow_redirects=True)
    assert "deleted; its runs stay in the log" in gone.text
    assert admin.get(f"/admin/automations/rules/{rule_id}").status_code == 404


def test_refusals_are_form_errors(admin, app):
    first = admin.post("/admin/automations/rules/new", _rule(name="Tag VIPs as gold", tag="vip", steps=[
        {"type": "add_tag", "tag": "gold"}]), follow_redirects=True)
    assert "created" in first.text
    loop = admin.post("/admin/automations/rules/new", _rule(name="Tag gold as VIP", tag="gold", steps=[
        {"type": "add_tag", "tag": "vip"}]))
    assert loop.status_code == 422
    assert escape("This rule would loop: rule 'Tag gold as VIP' adds tag 'vip'") in loop.text
    assert 'value="Tag gold as VIP"' in loop.text  # what the owner typed stays in the form

    empty = admin.post("/admin/automations/rules/new", _rule(name=""))
    assert empty.status_code == 422
    assert "Length must be between 1 and 200." in empty.text
    assert "Choose what the rule does: at least one “Then” step." in empty.text

    missing = admin.post("/admin/automations/rules/new", _rule(name="Grant", steps=[{"type": "grant_level"}]))
    assert missing.status_code == 422 and "Missing data for required field." in missing.text
    no_endpoint = admin.post("/admin/automations/rules/new", _rule(name="Hook", steps=[
        {"type": "send_webhook", "endpoint_id": "0"}]))
    assert no_endpoint.status_code == 422 and "Missing data for required field." in no_endpoint.text
    bad_text = admin.post("/admin/automations/rules/new", _rule(name="Mail", steps=[
        {"type": "send_email", "template": "automation_message", "subject": "Hi {nobody}", "body": "x"}]))
    assert bad_text.status_code == 422 and "Unknown placeholder {nobody}" in bad_text.text

    bad_url = admin.post("/admin/automations/endpoints/new", {"url": "ftp://crm", "events": ["*"], "enabled": "y"})
    assert bad_url.status_code == 422 and "Use an absolute http(s) URL." in bad_url.text
    short = admin.post("/admin/automations/endpoints/new", {"url": "https://crm.example.com", "events": ["*"],
                                                             "secret": "short"})
    assert short.status_code == 422 and "Length must be between 16 and 255." in short.text
    with app.app_context():
        assert db.session.query(AutomationRule).count() == 1 and db.session.query(WebhookEndpoint).count() == 0


def test_endpoint_edit_delivery_page_and_resend(admin, app):
    endpoint_id = _endpoint(admin, events=("tag_added", "card_updated"))
    with app.app_context():
        delivery = WebhookDelivery(endpoint_id=endpoint_id, event_type="tag_added", body='{"id":"evt_1"}',
                                   status="failed", attempt_count=1, last_status_code=500,
                                   last_error="HTTP 500: boom")
        db.session.add(delivery)
        db.session.commit()
        delivery_id = delivery.id
    page = admin.get(f"/admin/automations/endpoints/{endpoint_id}").text
    assert re.search(r'<input checked[^>]*value="tag_added"', page) and 'value="cgwhsec_' not in page
    saved = admin.post(f"/admin/automations/endpoints/{endpoint_id}", {
        "url": "https://crm.example.com/v2", "description": "CRM v2", "events": ["*"], "enabled": "y", "secret": ""},
        follow_redirects=True)
    assert "Endpoint saved." in saved.text and "Events: *." in saved.text
    detail = admin.get(f"/admin/automations/endpoints/{endpoint_id}/deliveries/{delivery_id}").text
    assert "HTTP 500: boom" in detail and "&#34;id&#34;: &#34;evt_1&#34;" in detail
    resent = admin.post(f"/admin/automations/endpoints/{endpoint_id}/deliveries/{delivery_id}/redeliver",
                        follow_redirects=True)
    assert f"Delivery #{delivery_id} resent as delivery #" in resent.text
    with app.app_context():
        copy = db.session.query(WebhookDelivery).filter_by(redelivery_of=delivery_id).one()
        assert copy.body == '{"id":"evt_1"}'
    deleted = admin.post(f"/admin/automations/endpoints/{endpoint_id}/delete", follow_redirects=True)
    assert "deleted with its deliveries" in deleted.text
