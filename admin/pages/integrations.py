"""Cart integrations and the ThriveCart-style product mapping screen."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from wtforms import SelectChoice

from admin import deliveries, services
from admin.forms import KIND_FIELDS, FunnelForm, IntegrationForm, IntegrationSettingsForm, MappingForm, ProductPickForm
from admin.pages.blueprint import bp, form_status, paginate, submit
from errors import CoursegateError
from extensions import db
from fulfillment import keap_post, rules
from fulfillment.models import Integration, IntegrationKind
from membership.models import Level

# Empty rows on each list, for adding without JavaScript (admin.js adds an "Add a row" button as well).
BLANK_ROWS = 3


@bp.get("/integrations")
def integrations():
    page = paginate(select(Integration).options(selectinload(Integration.rules)).order_by(Integration.id.desc()))
    return render_template("admin/integrations.html", page=page, webhook_url=rules.webhook_url)


@bp.route("/integrations/new", methods=["GET", "POST"])
def integration_new():
    form = IntegrationForm()
    integration = submit(form, lambda: rules.create_integration(db.session, form.settings()))
    if integration:
        # Rendered, not redirected: the secret appears in this response only.
        return render_template("admin/integration_created.html", integration=integration,
                               webhook_url=rules.webhook_url(integration), secret=integration.secret)
    return render_template("admin/integration_new.html", form=form, kind_fields=KIND_FIELDS), form_status(form)


@bp.route("/integrations/<int:integration_id>", methods=["GET", "POST"])
def integration(integration_id: int):
    integration = rules.get_integration(db.session, integration_id)
    form = IntegrationSettingsForm(obj=integration, data={"secret": "", "api_key": ""})
    form.for_kind(integration.kind)
    if request.method == "GET":
        for name in ("secret", "api_key"):  # write-only: never put them back in the page
            if name in form:
                form[name].data = ""
    if submit(form, lambda: rules.update_integration(db.session, integration, form.settings())):
        flash(f"Settings for “{integration.name}” saved.")
        return redirect(url_for("admin.integration", integration_id=integration.id))
    return render_template("admin/integration.html", integration=integration, form=form,
                           webhook_url=rules.webhook_url(integration), pick=ProductPickForm(formdata=None),
                           products=services.configured_products(db.session, integration),
                           names=deliveries.product_names(db.session, integration),
                           seen=deliveries.seen_products(db.session, integration),
                           keap_setup=keap_post.setup(db.session, integration)
                           if integration.kind == IntegrationKind.KEAP else None), form_status(form)


@bp.get("/integrations/<int:integration_id>/product")
def product_pick(integration_id: int):
    """The "configure a product" form posts here by GET, so it works without JavaScript."""
    integration = rules.get_integration(db.session, integration_id)
    pick = ProductPickForm(request.args)
    if not pick.validate():
        flash("Enter the cart's product id to configure it.", "bad")
        return redirect(url_for("admin.integration", integration_id=integration.id))
    return redirect(url_for("admin.product_mapping", integration_id=integration.id, product_id=pick.product_id.data))


def _level_choices() -> list[SelectChoice]:
    return [SelectChoice(level.id, level.name) for level in db.session.scalars(select(Level).order_by(Level.name))]


def _rows(rows: list[services.Row]) -> list[dict]:
    return [{"ref": row.ref, "level_ids": row.level_ids} for row in rows]


def _add_blank_rows(form) -> None:
    for rows in form.row_lists():
        for _ in range(BLANK_ROWS):
            rows.append_entry()


def _filled(rows) -> list[services.Row]:
    return [services.Row(row.form.ref.data, list(dict.fromkeys(row.form.level_ids.data)))
            for row in rows if row.form.ref.data]


def _changes_message(subject: str, changes: list[str]) -> str:
    if not changes:
        return f"{subject}: nothing changed."
    return f"{subject}: " + "; ".join(changes) + "."


@bp.route("/integrations/<int:integration_id>/products/<path:product_id>", methods=["GET", "POST"])
def product_mapping(integration_id: int, product_id: str):
    integration = rules.get_integration(db.session, integration_id)
    product_id = product_id.strip()
    if request.method == "POST":
        form = MappingForm()
    else:
        current = services.load_mapping(db.session, integration, product_id)
        form = MappingForm(data={"mode": current.mode, "level_ids": current.level_ids,
                                 "options": _rows(current.options), "bump_level_ids": current.bump_level_ids})
        _add_blank_rows(form)
    choices = _level_choices()
    form.set_level_choices(choices)
    changes = submit(form, lambda: services.save_mapping(db.session, integration, services.ProductMapping(
        product_id=product_id, mode=form.mode.data, level_ids=form.level_ids.data,
        options=_filled(form.options), bump_level_ids=form.bump_level_ids.data,
    )))
    names = deliveries.product_names(db.session, integration)
    title = product_title(product_id, names)
    if changes is not None:
        flash(_changes_message(f"{title} saved", changes), "good")
        return redirect(url_for("admin.product_mapping", integration_id=integration.id, product_id=product_id))
    return render_template("admin/product_mapping.html", integration=integration, product_id=product_id,
                           title=title, bump_name=names.get(("bump", product_id)), form=form,
                           has_levels=bool(choices),
                           has_rules=bool(services.product_rules(db.session, integration, product_id))), \
        form_status(form)


def product_title(product_id: str, names: dict) -> str:
    """"Mobile App Pro (product 12)" when a delivery named it, else "Product 12"."""
    name = names.get(("product", product_id))
    return f"{name} (product {product_id})" if name else f"Product {product_id}"


@bp.route("/integrations/<int:integration_id>/products/<path:product_id>/stop", methods=["GET", "POST"])
def product_stop(integration_id: int, product_id: str):
    """Taking a product out of fulfillment on purpose: a page that says what goes, then a confirmed POST."""
    integration = rules.get_integration(db.session, integration_id)
    title = product_title(product_id, deliveries.product_names(db.session, integration))
    if request.method == "POST":
        try:
            removed = services.stop_fulfilling(db.session, integration, product_id)
        except CoursegateError as error:
            db.session.rollback()
            flash(error.message, "bad")
            return redirect(url_for("admin.integration", integration_id=integration.id))
        flash(f"{title} is no longer fulfilled: " + "; ".join(removed) + ". Its next purchases will need "
              "attention instead of granting; access already granted stays.", "warn")
        return redirect(url_for("admin.integration", integration_id=integration.id))
    return render_template("admin/product_stop.html", integration=integration, product_id=product_id, title=title,
                           rules=services.product_rules(db.session, integration, product_id))


@bp.route("/integrations/<int:integration_id>/funnel", methods=["GET", "POST"])
def funnel_mapping(integration_id: int):
    """Upsells and downsells: the cart numbers them on their own, so they are the integration's, not a product's."""
    integration = rules.get_integration(db.session, integration_id)
    if request.method == "POST":
        form = FunnelForm()
    else:
        current = services.load_funnel(db.session, integration)
        form = FunnelForm(data={"upsells": _rows(current.upsells), "downsells": _rows(current.downsells)})
        _add_blank_rows(form)
    choices = _level_choices()
    form.set_level_choices(choices)
    changes = submit(form, lambda: services.save_funnel(db.session, integration, services.FunnelMapping(
        upsells=_filled(form.upsells), downsells=_filled(form.downsells))))
    if changes is not None:
        flash(_changes_message("Upsells and downsells saved", changes), "good")
        return redirect(url_for("admin.funnel_mapping", integration_id=integration.id))
    return render_template("admin/funnel_mapping.html", integration=integration, form=form, has_levels=bool(choices),
                           names=deliveries.product_names(db.session, integration)), form_status(form)
