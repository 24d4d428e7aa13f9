"""Automations in the browser: build, edit, switch on and off and delete rules and outgoing webhook endpoints,
follow a rule's runs and an endpoint's deliveries, resend a delivery.

Every form goes through the API's own schemas (``AutomationIn``, ``WebhookEndpointIn`` …) and services
(``automations.rules``, ``automations.webhooks``), so the admin refuses exactly what the API refuses: a rule that
would loop (422 ``automation_loop``) is shown above the form with the loop spelled out."""

from __future__ import annotations

import json

import marshmallow as ma
from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import select
from wtforms import SelectChoice

from admin.forms import ACTION_FIELDS, EndpointForm, RuleForm
from admin.pages.blueprint import bp, flatten_messages, paginate
from automations import rules, webhooks
from automations.models import TRIGGERS, AutomationRule, AutomationRun, WebhookDelivery, WebhookEndpoint
from automations.schemas import AutomationIn, AutomationUpdate, WebhookEndpointIn, WebhookEndpointUpdate
from errors import CoursegateError
from extensions import db
from membership.models import Level

RULE_RUNS = 20
EVERY_EVENT = "*"


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


# --- rule forms ------------------------------------------------------------------------------------

def _rule_form(rule: AutomationRule | None = None) -> RuleForm:
    """The form with its choices; filled from ``rule`` on a GET, from the post otherwise."""
    if rule is not None and request.method == "GET":
        rows = [dict(action) for action in rule.actions]
        form = RuleForm(data={"name": rule.name, "trigger": rule.trigger, "level_id": rule.level_id or 0,
                              "product_id": rule.product_id or "", "tag": rule.tag or "", "enabled": rule.enabled,
                              "actions": rows + [{}] * max(1, 4 - len(rows))})
    else:
        form = RuleForm()
    levels = [SelectChoice(level.id, level.name) for level in db.session.scalars(select(Level).order_by(Level.name))]
    endpoints = [SelectChoice(e.id, e.url)
                 for e in db.session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id))]
    emails = [SelectChoice(e["name"], "Your own message (the subject and text below)" if e["owner_text"]
                           else f"{e['name']}: {e['description']}") for e in rules.rule_catalog()["emails"]]
    form.trigger.choices = [SelectChoice(t, _label(t)) for t in TRIGGERS]
    form.level_id.choices = [SelectChoice(0, "Any level")] + levels
    for row in form.actions:
        row.form.level_id.choices = [SelectChoice(0, "— the event's level —")] + levels
        row.form.endpoint_id.choices = [SelectChoice(0, "Choose an endpoint…")] + endpoints
        row.form.template.choices = [SelectChoice("", "Choose an email…")] + emails
    return form


def _show_errors(form: RuleForm, errors: dict | list | str | None, message: str | None = None) -> None:
    """Put a schema's or a service's error messages on the rule form: per field, per action row, or on top."""
    if not isinstance(errors, dict):
        form.form_errors.extend(flatten_messages(errors or message or []))
        return
    placed = False
    for name, value in errors.items():
        if name == "actions" and isinstance(value, dict):
            for index, row_errors in value.items():
                row = form.actions[form.row_index(int(index))].form
                for field_name, messages in (row_errors.items() if isinstance(row_errors, dict)
                                             else [("type", row_errors)]):
                    target = getattr(row, field_name if field_name in ACTION_FIELDS.get(row.type.data, ())
                                     or field_name == "type" else "type")
                    target.errors = [*target.errors, *flatten_messages(messages)]
            # The list's own errors were fixed at validation time; say so above the form, where it counts.
            form.form_errors.append("Please correct the steps marked below.")
            placed = True
        elif name not in ("actions", "loop", "_schema") and hasattr(form, name):
            target = getattr(form, name)
            target.errors = [*target.errors, *flatten_messages(value)]
            placed = True
        elif name == "actions" and not any(row.form.type.data for row in form.actions):
            form.form_errors.append("Choose what the rule does: at least one “Then” step.")
            placed = True
        elif name != "loop":
            form.form_errors.extend(flatten_messages(value))
            placed = True
    if not placed and message:
        form.form_errors.append(message)


def _save_rule(form: RuleForm, rule: AutomationRule | None) -> AutomationRule | None:
    """Load the form through the API's schema, then create or update through the service; None on a refusal."""
    if not form.validate_on_submit():
        return None
    data = form.rule_data()
    try:
        loaded = (AutomationIn() if rule is None else AutomationUpdate()).load(data)
    except ma.ValidationError as error:
        _show_errors(form, error.messages)
        return None
    try:
        saved = rules.create_rule(db.session, loaded) if rule is None else rules.update_rule(db.session, rule, loaded)
    except CoursegateError as error:
        db.session.rollback()
        if error.code == "automation_loop":
            form.form_errors.append(error.message)
        else:
            _show_errors(form, error.errors, error.message)
        return None
    return saved


def _rule(rule_id: int) -> AutomationRule:
    return rules.get_rule(db.session, rule_id)


@bp.route("/automations/rules/new", methods=["GET", "POST"])
def automation_new():
    form = _rule_form()
    rule = _save_rule(form, None) if request.method == "POST" else None
    if rule is not None:
        flash(f"Rule “{rule.name}” created{'' if rule.enabled else ' (disabled)'}.")
        return redirect(url_for("admin.automation", rule_id=rule.id))
    return render_template("admin/automation_form.html", form=form, rule=None, action_fields=ACTION_FIELDS,
                           catalog=rules.rule_catalog()), 422 if form.errors else 200


@bp.route("/automations/rules/<int:rule_id>", methods=["GET", "POST"])
def automation(rule_id: int):
    rule = _rule(rule_id)
    form = _rule_form(rule)
    if request.method == "POST" and _save_rule(form, rule) is not None:
        flash(f"Rule “{rule.name}” saved.")
        return redirect(url_for("admin.automation", rule_id=rule.id))
    runs = db.session.scalars(select(AutomationRun).where(AutomationRun.rule_id == rule.id)
                              .order_by(AutomationRun.id.desc()).limit(RULE_RUNS)).all()
    return render_template("admin/automation_form.html", form=form, rule=rule, runs=runs,
                           action_fields=ACTION_FIELDS, catalog=rules.rule_catalog()), 422 if form.errors else 200


@bp.post("/automations/rules/<int:rule_id>/enabled")
def automation_enabled(rule_id: int):
    """Switch a rule on or off (switching on checks for loops again, as PATCH does)."""
    rule = _rule(rule_id)
    wanted = request.form.get("enabled") == "1"
    try:
        rules.update_rule(db.session, rule, {"enabled": wanted})
    except CoursegateError as error:
        db.session.rollback()
        flash(error.message, "bad")
        return redirect(url_for("admin.automations"))
    flash(f"Rule “{rule.name}” {'enabled' if wanted else 'disabled'}.")
    return redirect(url_for("admin.automations"))


@bp.post("/automations/rules/<int:rule_id>/delete")
def automation_delete(rule_id: int):
    rule = _rule(rule_id)
    name = rule.name
    rules.delete_rule(db.session, rule)
    flash(f"Rule “{name}” deleted; its runs stay in the log.")
    return redirect(url_for("admin.automations"))


# --- webhook endpoints -----------------------------------------------------------------------------

def _endpoint_form(endpoint: WebhookEndpoint | None = None) -> EndpointForm:
    if endpoint is not None and request.method == "GET":
        form = EndpointForm(obj=endpoint, data={"secret": ""})
        form.secret.data = ""
    else:
        form = EndpointForm()
    form.events.choices = [SelectChoice(EVERY_EVENT, "Every event")] + [SelectChoice(t, _label(t)) for t in TRIGGERS]
    return form


def _save_endpoint(form: EndpointForm, endpoint: WebhookEndpoint | None) -> WebhookEndpoint | None:
    if not form.validate_on_submit():
        return None
    data = form.endpoint_data()
    if EVERY_EVENT in data["events"]:
        data["events"] = [EVERY_EVENT]
    try:
        loaded = (WebhookEndpointIn() if endpoint is None else WebhookEndpointUpdate()).load(data)
        saved = (webhooks.create_endpoint(db.session, loaded) if endpoint is None
                 else webhooks.update_endpoint(db.session, endpoint, loaded))
    except ma.ValidationError as error:
        _show_errors(form, error.messages)
        return None
    except CoursegateError as error:
        db.session.rollback()
        _show_errors(form, error.errors, error.message)
        return None
    return saved


@bp.route("/automations/endpoints/new", methods=["GET", "POST"])
def webhook_endpoint_new():
    form = _endpoint_form()
    endpoint = _save_endpoint(form, None) if request.method == "POST" else None
    if endpoint is not None:
        # The secret is shown this once, as the API returns it once.
        return render_template("admin/webhook_endpoint_created.html", endpoint=endpoint)
    return render_template("admin/webhook_endpoint_form.html", form=form, endpoint=None), \
        422 if form.errors else 200


@bp.post("/automations/endpoints/<int:endpoint_id>")
def webhook_endpoint_save(endpoint_id: int):
    endpoint = webhooks.get_endpoint(db.session, endpoint_id)
    form = _endpoint_form(endpoint)
    if _save_endpoint(form, endpoint) is not None:
        flash("Endpoint saved." + (" It now signs with the new secret." if form.secret.data else ""))
        return redirect(url_for("admin.webhook_endpoint", endpoint_id=endpoint.id))
    return endpoint_page(endpoint, form, 422)


def endpoint_page(endpoint: WebhookEndpoint, form: EndpointForm | None = None, status: int = 200):
    page = paginate(select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
                    .order_by(WebhookDelivery.id.desc()))
    return render_template("admin/webhook_endpoint.html", endpoint=endpoint, page=page,
                           form=form or _endpoint_form(endpoint)), status


@bp.get("/automations/endpoints/<int:endpoint_id>")
def webhook_endpoint(endpoint_id: int):
    return endpoint_page(webhooks.get_endpoint(db.session, endpoint_id))


@bp.post("/automations/endpoints/<int:endpoint_id>/delete")
def webhook_endpoint_delete(endpoint_id: int):
    endpoint = webhooks.get_endpoint(db.session, endpoint_id)
    url = endpoint.url
    webhooks.delete_endpoint(db.session, endpoint)
    flash(f"Endpoint {url} deleted with its deliveries. Rules that call it fail until edited.")
    return redirect(url_for("admin.automations"))


@bp.get("/automations/endpoints/<int:endpoint_id>/deliveries/<int:delivery_id>")
def webhook_delivery(endpoint_id: int, delivery_id: int):
    endpoint = webhooks.get_endpoint(db.session, endpoint_id)
    delivery = webhooks.get_delivery(db.session, endpoint, delivery_id)
    try:
        pretty = json.dumps(json.loads(delivery.body), indent=2, ensure_ascii=False)
    except ValueError:
        pretty = delivery.body
    return render_template("admin/webhook_delivery.html", endpoint=endpoint, delivery=delivery, pretty_body=pretty)


@bp.post("/automations/endpoints/<int:endpoint_id>/deliveries/<int:delivery_id>/redeliver")
def webhook_redeliver(endpoint_id: int, delivery_id: int):
    """Send the same body again as a new delivery (after the commit), as the API's redeliver does."""
    endpoint = webhooks.get_endpoint(db.session, endpoint_id)
    delivery = webhooks.redeliver(db.session, webhooks.get_delivery(db.session, endpoint, delivery_id))
    flash(f"Delivery #{delivery_id} resent as delivery #{delivery.id}.")
    return redirect(url_for("admin.webhook_delivery", endpoint_id=endpoint.id, delivery_id=delivery.id))
