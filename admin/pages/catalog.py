"""Courses and access levels: list, create, edit, publish."""

from __future__ import annotations

from flask import flash, redirect, render_template, url_for
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from wtforms import SelectChoice

from admin import stats
from admin.forms import CourseForm, LevelForm
from admin.pages.blueprint import bp, form_status, paginate, submit
from extensions import db
from membership import courses as catalogue
from membership.models import Course, CourseStatus, Level


# --- courses ---------------------------------------------------------------------------------------

@bp.get("/courses")
def courses():
    page = paginate(select(Course).options(selectinload(Course.levels)).order_by(Course.id.desc()))
    return render_template("admin/courses.html", page=page)


@bp.route("/courses/new", methods=["GET", "POST"])
def course_new():
    form = CourseForm()
    course = submit(form, lambda: catalogue.create_course(db.session, title=form.title.data, slug=form.slug.data,
                                                          status=form.status.data, url=form.url.data or None),
                    default_field="slug")
    if course:
        flash(f"Course “{course.title}” created ({course.status}).")
        return redirect(url_for("admin.courses"))
    return render_template("admin/course_form.html", form=form, course=None), form_status(form)


@bp.route("/courses/<int:course_id>", methods=["GET", "POST"])
def course_edit(course_id: int):
    course = catalogue.get_course(db.session, course_id)
    form = CourseForm(obj=course)
    if submit(form, lambda: catalogue.update_course(db.session, course, {
            "title": form.title.data, "slug": form.slug.data, "status": form.status.data,
            "url": form.url.data or None}), default_field="slug"):
        flash(f"Course “{course.title}” saved.")
        return redirect(url_for("admin.courses"))
    return render_template("admin/course_form.html", form=form, course=course), form_status(form)


@bp.post("/courses/<int:course_id>/publish")
def course_publish(course_id: int):
    course = catalogue.get_course(db.session, course_id)
    catalogue.update_course(db.session, course, {"status": CourseStatus.PUBLISHED})
    flash(f"Course “{course.title}” is published.")
    return redirect(url_for("admin.courses"))


@bp.post("/courses/<int:course_id>/unpublish")
def course_unpublish(course_id: int):
    course = catalogue.get_course(db.session, course_id)
    catalogue.update_course(db.session, course, {"status": CourseStatus.DRAFT})
    flash(f"Course “{course.title}” is back to draft.")
    return redirect(url_for("admin.courses"))


# --- levels ----------------------------------------------------------------------------------------

def _course_choices() -> list[SelectChoice]:
    return [SelectChoice(c.id, f"{c.title} ({c.status})") for c in db.session.scalars(select(Course).order_by(Course.title))]


@bp.get("/levels")
def levels():
    page = paginate(select(Level).options(selectinload(Level.courses)).order_by(Level.id.desc()))
    return render_template("admin/levels.html", page=page, active=stats.active_grants_per_level(db.session))


@bp.route("/levels/new", methods=["GET", "POST"])
def level_new():
    form = LevelForm()
    form.course_ids.choices = _course_choices()
    level = submit(form, lambda: catalogue.create_level(
        db.session, name=form.name.data, slug=form.slug.data, course_ids=form.course_ids.data,
        duration_days=form.duration_days.data), default_field="slug")
    if level:
        flash(f"Level “{level.name}” created.")
        return redirect(url_for("admin.levels"))
    return render_template("admin/level_form.html", form=form, level=None), form_status(form)


@bp.route("/levels/<int:level_id>", methods=["GET", "POST"])
def level_edit(level_id: int):
    level = catalogue.get_level(db.session, level_id)
    form = LevelForm(obj=level, data={"course_ids": [c.id for c in level.courses]})
    form.course_ids.choices = _course_choices()
    if submit(form, lambda: catalogue.update_level(db.session, level, {
            "name": form.name.data, "slug": form.slug.data, "course_ids": form.course_ids.data,
            "duration_days": form.duration_days.data}), default_field="slug"):
        flash(f"Level “{level.name}” saved.")
        return redirect(url_for("admin.levels"))
    return render_template("admin/level_form.html", form=form, level=level), form_status(form)
