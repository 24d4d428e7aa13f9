"""A member's profile on their page: the edit form (the API's schema and service) and the history it writes."""

from __future__ import annotations

from flask import flash, redirect, url_for
from markupsafe import Markup, escape
from sqlalchemy import select
from sqlalchemy.orm import Session

from admin.forms import ProfileForm
from admin.pages.blueprint import MEMBER_SECTIONS, MemberSection, bp, field_error, load_with
from admin.pages.members import _member, _member_page
from errors import CoursegateError
from extensions import db
from membership import history
from membership.errors import DuplicateEmail
from membership.models import Member
from membership.schemas import MemberUpdate


def _taken_message(email: str) -> Markup | str:
    other = db.session.scalar(select(Member).where(Member.email == email.strip().lower()))
    if other is None:
        return DuplicateEmail.message
    link = url_for("admin.member", member_id=other.id)
    return Markup('Another member already uses {}: <a href="{}">open their page</a>, or choose another '
                  'email.').format(escape(other.email), link)


@bp.post("/members/<int:member_id>/profile")
def member_profile(member_id: int):
    """Save the profile as ``PATCH /api/v1/members/<id>`` would; an email change keeps the Keap link."""
    member = _member(member_id)
    form = ProfileForm()
    old_email = member.email
    data = load_with(MemberUpdate(), form.changes(), form) if form.validate_on_submit() else None
    if data is None:
        return _member_page(member, profile=form, status=422)
    try:
        changed = history.update_profile(db.session, member, data, by="owner admin")
    except DuplicateEmail:
        db.session.rollback()
        form.email.errors = [*form.email.errors, _taken_message(form.email.data)]
        return _member_page(db.session.get(Member, member_id), profile=form, status=422)
    except CoursegateError as error:
        db.session.rollback()
        field_error(form, error, "email")
        return _member_page(db.session.get(Member, member_id), profile=form, status=422)
    if not changed:
        flash("Nothing to save: the profile was already like that.")
    else:
        flash("Profile saved: " + ", ".join(row.field.replace("_", " ") for row in changed) + ".")
        if member.email != old_email:
            keap = history.keap_link_note(member)
            flash(f"Email changed from {old_email} to {member.email}."
                  + (f" {keap} Their Keap subscriptions still show on the billing page." if keap else ""))
    return redirect(url_for("admin.member", member_id=member.id))


def member_history_panel(session: Session, member: Member) -> dict:
    return {"changes": history.member_history(session, member)}


MEMBER_SECTIONS.append(MemberSection("History", "admin/member_history.html", member_history_panel))
