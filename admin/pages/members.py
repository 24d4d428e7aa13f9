"""Members: search, a member's page, grant / extend / revoke a level, resend the welcome email."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from wtforms import SelectChoice

from admin import services
from admin.forms import ExtendForm, GrantForm, MemberForm, ProfileForm, RevokeForm
from admin.pages.bulk_members import bulk_form
from admin.pages.blueprint import MEMBER_SECTIONS, bp, form_status, paginate, submit
from extensions import db
from fulfillment.models import Integration
from membership import courses as catalogue
from membership import grants
from membership import services as membership_services
from membership.errors import MemberNotFound
from membership.models import Grant, GrantSourceKind, Level, Member

PER_PAGE = 50


def _member(member_id: int) -> Member:
    member = db.session.get(Member, member_id)
    if member is None:
        raise MemberNotFound()
    return member


def _grant(member: Member, grant_id: int) -> Grant:
    grant = db.session.get(Grant, grant_id)
    if grant is None or grant.member_id != member.id:
        abort(404)
    return grant


def _end(day: date | None) -> datetime | None:
    """Access "until" a day means through that whole UTC day; no day, no end."""
    return datetime.combine(day + timedelta(days=1), time.min, tzinfo=UTC) if day else None


@bp.get("/members")
def members():
    q = request.args.get("q", "").strip()[:320]
    page = paginate(services.search_members(q), per_page=PER_PAGE)
    return render_template("admin/members.html", page=page, q=q, bulk=bulk_form(q=q))


@bp.route("/members/new", methods=["GET", "POST"])
def member_new():
    """Add a member by hand (no email is sent: grant a level, then resend the welcome email if wanted)."""
    form = MemberForm()
    member = submit(form, lambda: membership_services.create_member(db.session, form.email.data,
                                                                    name=form.name.data or ""),
                    default_field="email")
    if member:
        flash(f"Member {member.email} added.")
        return redirect(url_for("admin.member", member_id=member.id))
    return render_template("admin/member_new.html", form=form), form_status(form)


def _grant_form() -> GrantForm:
    form = GrantForm()
    form.level_id.choices = [SelectChoice(0, "Choose a level…")] + [
        SelectChoice(level.id, level.name) for level in db.session.scalars(select(Level).order_by(Level.name))]
    return form


def _member_page(member: Member, grant_form: GrantForm | None = None, status: int = 200, *,
                 profile: ProfileForm | None = None):
    sections = [(section, section.load(db.session, member)) for section in MEMBER_SECTIONS]
    return render_template(
        "admin/member.html", member=member, grants=services.member_grants(db.session, member),
        emails=services.member_emails(db.session, member), grant_form=grant_form or _grant_form(),
        sections=sections, source_label=source_label,
        profile_form=profile or ProfileForm(formdata=None, obj=member),
    ), status


def source_label(grant: Grant) -> str:
    """Where a grant came from, in the owner's words: the cart and order, or by hand."""
    if grant.source_kind == GrantSourceKind.ORDER:
        integration = db.session.get(Integration, grant.integration_id) if grant.integration_id else None
        cart = f"{integration.name}: " if integration else ""
        line = f", {grant.line_ref}" if grant.line_ref else ""
        return f"{cart}order {grant.order_ref}{line}"
    return {"manual": "Added by hand"}.get(grant.source_kind, grant.source_kind.replace("_", " ").capitalize())


@bp.get("/members/<int:member_id>")
def member(member_id: int):
    return _member_page(_member(member_id))


@bp.post("/members/<int:member_id>/grants")
def member_grant(member_id: int):
    member = _member(member_id)
    form = _grant_form()

    def grant_it() -> Grant:
        level = catalogue.get_level(db.session, form.level_id.data)
        return grants.open_grant(db.session, member, level, ends_at=_end(form.ends_on.data),
                                               note=form.note.data or None)

    grant = submit(form, grant_it, default_field="level_id")
    if grant is None:
        return _member_page(member, form, 422)
    flash(f"{member.email} now has “{grant.level.name}”.")
    return redirect(url_for("admin.member", member_id=member.id))


@bp.get("/members/<int:member_id>/grants/<int:grant_id>")
def member_grant_page(member_id: int, grant_id: int):
    member = _member(member_id)
    grant = _grant(member, grant_id)
    extend = ExtendForm(formdata=None, data={"ends_on": (grant.ends_at - timedelta(days=1)).date()
                                             if grant.ends_at else None})
    return _grant_page(member, grant, extend, RevokeForm(formdata=None))


def _grant_page(member: Member, grant: Grant, extend: ExtendForm, revoke: RevokeForm, status: int = 200):
    return render_template("admin/grant.html", member=member, grant=grant, extend=extend, revoke=revoke,
                           source_label=source_label), status


@bp.post("/members/<int:member_id>/grants/<int:grant_id>/extend")
def member_grant_extend(member_id: int, grant_id: int):
    member = _member(member_id)
    grant = _grant(member, grant_id)
    form = ExtendForm()
    if submit(form, lambda: grants.extend(db.session, grant, _end(form.ends_on.data))):
        until = form.ends_on.data.isoformat() if form.ends_on.data else "no end"
        flash(f"“{grant.level.name}” for {member.email} now runs until {until}.")
        return redirect(url_for("admin.member", member_id=member.id))
    return _grant_page(member, grant, form, RevokeForm(formdata=None), 422)


@bp.post("/members/<int:member_id>/grants/<int:grant_id>/revoke")
def member_grant_revoke(member_id: int, grant_id: int):
    member = _member(member_id)
    grant = _grant(member, grant_id)
    form = RevokeForm()
    if submit(form, lambda: grants.revoke_one(db.session, grant, form.reason.data)):
        flash(f"“{grant.level.name}” revoked for {member.email}. Other grants of that level are untouched.")
        return redirect(url_for("admin.member", member_id=member.id))
    return _grant_page(member, grant, ExtendForm(formdata=None), form, 422)


@bp.post("/members/<int:member_id>/welcome")
def member_welcome(member_id: int):
    member = _member(member_id)
    services.resend_welcome_email(db.session, member)
    flash(f"A new welcome email with a fresh login link is on its way to {member.email}.")
    return redirect(url_for("admin.member", member_id=member.id))
