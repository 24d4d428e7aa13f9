"""Courses and access levels: list, create, edit, publish."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from sqlalchemy import select
from wtforms import SelectChoice

from admin.forms import CourseForm, LevelForm
from admin.pages import bp, paginate
from errors import CoursegateError
from extensions import db
from membership import courses as catalogue
from membership.models import Course, CourseStatus, Level


def field_error(form, error: CoursegateError, default_field: str | None = None) -> None:
    """Show a service's refusal next to the field it concerns (or above the form)."""
    fields = {name: getattr(form, name) for name in (error.errors or {}) if hasattr(form, name)}
    if fields:
        for name, target in fields.items():
            target.errors = [*target.errors, *error.errors[name]]
    elif default_field and getattr(form, default_field, None) is not None:
        target = getattr(form, default_field)
        target.errors = [*target.errors, error.message]
    else:
        form.form_errors.append(error.message)


# --- courses ---------------------------------------------------------------------------------------

@bp.get("/courses")
def courses():
    page = paginate(select(Course).order_by(Course.id.desc()))
    return render_template("admin/courses.html", page=page)


@bp.route("/courses/new", methods=["GET", "POST"])
def course_new():
    form = CourseForm()
    if form.validate_on_submit():
        try:
            course = catalogue.create_course(db.session, title=form.title.data, slug=form.slug.data,
                                           status=form.status.data)
        except CoursegateError as error:
            db.session.rollback()
            field_error(form, error, "slug")
        else:
            db.session.commit()
            flash(f"Course “{course.title}” created ({course.status}).")
            return redirect(url_for("admin.courses"))
    return _form_page("admin/course_form.html", form, course=None)


@bp.route("/courses/<int:course_id>", methods=["GET", "POST"])
def course_edit(course_id: int):
    course = catalogue.get_course(db.session, course_id)
    form = CourseForm(obj=course)
    if form.validate_on_submit():
        try:
            catalogue.update_course(db.session, course, {"title": form.title.data, "slug": form.slug.data,
                                                       "status": form.status.data})
        except CoursegateError as error:
            db.session.rollback()
            field_error(form, error, "slug")
        else:
            db.session.commit()
            flash(f"Course “{course.title}” saved.")
            return redirect(url_for("admin.courses"))
    return _form_page("admin/course_form.html", form, course=course)


@bp.post("/courses/<int:course_id>/publish")
def course_publish(course_id: int):
    course = catalogue.get_course(db.session, course_id)
    catalogue.update_course(db.session, course, {"status": CourseStatus.PUBLISHED})
    db.session.commit()
    flash(f"Course “{course.title}” is published.")
    return redirect(url_for("admin.courses"))


@bp.post("/courses/<int:course_id>/unpublish")
def course_unpublish(course_id: int):
    course = catalogue.get_course(db.session, course_id)
    catalogue.update_course(db.session, course, {"status": CourseStatus.DRAFT})
    db.session.commit()
    flash(f"Course “{course.title}” is back to draft.")
    return redirect(url_for("admin.courses"))


# --- levels ----------------------------------------------------------------------------------------

def _course_choices() -> list[SelectChoice]:
    return [SelectChoice(c.id, f"{c.title} ({c.status})") for c in db.session.scalars(select(Course).order_by(Course.title))]


@bp.get("/levels")
def levels():
    page = paginate(select(Level).order_by(Level.id.desc()))
    return render_template("admin/levels.html", page=page)


@bp.route("/levels/new", methods=["GET", "POST"])
def level_new():
    form = LevelForm()
    form.course_ids.choices = _course_choices()
    if form.validate_on_submit():
        try:
            level = catalogue.create_level(db.session, name=form.name.data, slug=form.slug.data,
                                         course_ids=form.course_ids.data, duration_days=form.duration_days.data)
        except CoursegateError as error:
            db.session.rollback()
            field_error(form, error, "slug")
        else:
            db.session.commit()
            flash(f"Level “{level.name}” created.")
            return redirect(url_for("admin.levels"))
    return _form_page("admin/level_form.html", form, level=None)


@bp.route("/levels/<int:level_id>", methods=["GET", "POST"])
def level_edit(level_id: int):
    level = catalogue.get_level(db.session, level_id)
    form = LevelForm(obj=level, data={"course_ids": [c.id for c in level.courses]})
    form.course_ids.choices = _course_choices()
    if form.validate_on_submit():
        try:
            catalogue.update_level(db.session, level, {"name": form.name.data, "slug": form.slug.data,
                                                     "course_ids": form.course_ids.data,
                                                     "duration_days": form.duration_days.data})
        except CoursegateError as error:
            db.session.rollback()
            field_error(form, error, "slug")
        else:
            db.session.commit()
            flash(f"Level “{level.name}” saved.")
            return redirect(url_for("admin.levels"))
    return _form_page("admin/level_form.html", form, level=level)


def _form_page(template: str, form, **context):
    status = 422 if form.errors or form.form_errors else 200
    return render_template(template, form=form, **context), status
