"""Bulk changes from the members list: the rows ticked, or every member matching the search; a confirmation
that says how many members the change will touch; then the result (matched / changed / unchanged).

Both steps run the set-based :func:`membership.bulk.apply`: the confirmation runs it and rolls back, so the
number it shows is exactly what applying would change, and "all matching this search" stays a subquery (never
a list of 100,000 ids in a form)."""

from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from sqlalchemy import select
from wtforms import SelectChoice

from admin.forms import BULK_ACTIONS, BulkForm
from admin.pages.blueprint import bp
from errors import CoursegateError
from extensions import db
from membership import bulk
from membership.models import Level

MAX_IDS = 10_000  # ticked rows come from pages of 50; anything larger is a search


def bulk_form(**data) -> BulkForm:
    form = BulkForm(**data)
    form.level_id.choices = [SelectChoice(0, "Choose a level…")] + [
        SelectChoice(level.id, level.name) for level in db.session.scalars(select(Level).order_by(Level.name))]
    return form


def _ids() -> list[int]:
    return [int(v) for v in request.form.getlist("member_id")[:MAX_IDS] if v.isdigit()]


def _describe(form: BulkForm) -> str:
    label = dict((c.value, c.label) for c in BULK_ACTIONS)[form.action.data].lower()
    if form.action.data == "grant_level":
        level = db.session.get(Level, form.level_id.data)
        return f"grant level “{level.name if level else form.level_id.data}”"
    if form.action.data == "set_external_source":
        return f"set the external source to “{form.value.data}”" if form.value.data else "clear the external source"
    return f"{label} “{form.value.data}”"


def _run(form: BulkForm, ids: list[int]) -> bulk.BulkResult:
    selector = {"search": form.q.data or ""} if form.everyone.data else {"member_ids": ids}
    return bulk.apply(db.session, form.action.data, form.argument(), **selector)


def _back(form: BulkForm):
    return redirect(url_for("admin.members", q=form.q.data or None))


def _checked_run(form: BulkForm, ids: list[int]) -> bulk.BulkResult | None:
    """Validate the form and run the change (uncommitted); on a refusal flash why and return None."""
    if form.validate_on_submit() and not form.everyone.data and not ids:
        form.form_errors.append("Tick the members to change, or choose every member matching the search.")
    if form.errors:
        flash(" ".join(str(m) for messages in form.errors.values() for m in messages), "bad")
        return None
    try:
        return _run(form, ids)
    except CoursegateError as error:
        db.session.rollback()
        flash(error.message, "bad")
        return None


@bp.post("/members/bulk")
def members_bulk():
    """Step 1: say what the change would do (run it, count, roll back) and ask to confirm."""
    form, ids = bulk_form(), _ids()
    preview = _checked_run(form, ids)
    db.session.rollback()
    if preview is None:
        return _back(form)
    return render_template("admin/members_bulk.html", form=form, ids=ids, preview=preview,
                           description=_describe(form))


@bp.post("/members/bulk/apply")
def members_bulk_apply():
    """Step 2: apply it and report what happened (the request commits once the page answers)."""
    form, ids = bulk_form(), _ids()
    result = _checked_run(form, ids)
    if result is None:
        return _back(form)
    flash(f"Done: {_describe(form)}. {result.matched:,} matched, {result.changed:,} changed, "
          f"{result.matched - result.changed:,} unchanged.")
    return _back(form)
