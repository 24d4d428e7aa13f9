"""Cart integrations and the ThriveCart-style product mapping screen."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from wtforms import SelectChoice

from admin import services
from admin.forms import IntegrationForm, IntegrationSettingsForm, MappingForm, ProductPickForm
from admin.pages.blueprint import bp, form_status, paginate, submit
from extensions import db
from fulfillment import keap_post, rules
from fulfillment.models import Integration, IntegrationKind
from membership.models import Level

BLANK_OPTION_ROWS = 3
BLANK_FUNNEL_ROWS = 2


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
    return render_template("admin/integration_new.html", form=form), form_status(form)


@bp.route("/integrations/<int:integration_id>", methods=["GET", "POST"])
def integration(integration_id: int):
    integration = rules.get_integration(db.session, integration_id)
    form = IntegrationSettingsForm(obj=integration, data={"secret": "", "api_key": ""})
    if request.method == "GET":
        form.secret.data = form.api_key.data = ""  # write-only: never put them back in the page
    if submit(form, lambda: rules.update_integration(db.session, integration, form.settings())):
        flash(f"Settings for “{integration.name}” saved.")
        return redirect(url_for("admin.integration", integration_id=integration.id))
    return render_template("admin/integration.html", integration=integration, form=form,
                           webhook_url=rules.webhook_url(integration), pick=ProductPickForm(formdata=None),
                           products=services.configured_products(db.session, integration),
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


@bp.route("/integrations/<int:integration_id>/products/<path:product_id>", methods=["GET", "POST"])
def product_mapping(integration_id: int, product_id: str):
    integration = rules.get_integration(db.session, integration_id)
    product_id = product_id.strip()
    if request.method == "POST":
        form = MappingForm()
    else:
        current = services.load_mapping(db.session, integration, product_id)
        form = MappingForm(data={"mode": current.mode, "level_ids": current.level_ids,
                                 "options": _rows(current.options), "bump_level_ids": current.bump_level_ids,
                                 "upsells": _rows(current.upsells), "downsells": _rows(current.downsells)})
        for rows, blanks in ((form.options, BLANK_OPTION_ROWS), (form.upsells, BLANK_FUNNEL_ROWS),
                             (form.downsells, BLANK_FUNNEL_ROWS)):
            for _ in range(blanks):
                rows.append_entry()
    choices = _level_choices()
    form.set_level_choices(choices)
    saved = submit(form, lambda: services.save_mapping(db.session, integration, services.ProductMapping(
        product_id=product_id, mode=form.mode.data, level_ids=form.level_ids.data,
        options=_filled(form.options), bump_level_ids=form.bump_level_ids.data,
        upsells=_filled(form.upsells), downsells=_filled(form.downsells),
    )))
    if saved is not None:
        flash(f"Product {product_id} saved: purchases now unlock the levels below.")
        return redirect(url_for("admin.product_mapping", integration_id=integration.id, product_id=product_id))
    return render_template("admin/product_mapping.html", integration=integration, product_id=product_id,
                           form=form, has_levels=bool(choices)), form_status(form)


def _filled(rows) -> list[services.Row]:
    return [services.Row(row.form.ref.data, list(dict.fromkeys(row.form.level_ids.data)))
            for row in rows if row.form.ref.data]
