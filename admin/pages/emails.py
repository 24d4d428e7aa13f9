"""The outbox (status, error, resend) and a preview of every email in the catalogue."""

from __future__ import annotations

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from admin.pages import bp, paginate
from emails import catalog, rendering
from emails import services as email_services
from emails.models import EmailStatus, OutboundEmail
from errors import CoursegateError
from extensions import db

# Stand-in values for previews; a key not listed here shows as "<key>".
SAMPLE_CONTEXT = {
    "member_name": "Jane Buyer",
    "login_url": "{site_url}/login/preview-token",
    "levels": ["Gold", "Bonus Workshop"],
    "card_update_url": "{site_url}/account/card",
    "grace_days": 7,
}


def sample_context(kind: catalog.EmailKind, site_url: str) -> dict:
    context = {}
    for key in sorted(kind.required):
        value = SAMPLE_CONTEXT.get(key, f"<{key}>")
        context[key] = value.format(site_url=site_url) if isinstance(value, str) else value
    return context


@bp.get("/emails")
def emails():
    status = request.args.get("status", "")
    query = select(OutboundEmail).order_by(OutboundEmail.id.desc())
    if status in {s.value for s in EmailStatus}:
        query = query.where(OutboundEmail.status == status)
    else:
        status = ""
    q = request.args.get("q", "").strip().lower()[:320]
    if q:
        query = query.where(OutboundEmail.recipient == q)
    page = paginate(query)
    return render_template("admin/emails.html", page=page, status=status, q=q, statuses=list(EmailStatus))


@bp.get("/emails/<int:email_id>")
def email(email_id: int):
    row = db.session.get(OutboundEmail, email_id)
    if row is None:
        abort(404)
    return render_template("admin/email.html", email=row)


@bp.post("/emails/<int:email_id>/resend")
def email_resend(email_id: int):
    row = db.session.get(OutboundEmail, email_id)
    if row is None:
        abort(404)
    try:
        email_services.requeue(db.session, row)
    except CoursegateError as error:
        db.session.rollback()
        flash(error.message, "bad")
    else:
        db.session.commit()
        flash(f"Email #{row.id} to {row.recipient} is queued again.")
    return redirect(url_for("admin.email", email_id=email_id))


@bp.get("/emails/templates")
def email_templates():
    return render_template("admin/email_templates.html", kinds=sorted(catalog.CATALOG.values(), key=lambda k: k.name))


@bp.get("/emails/templates/<name>")
def email_preview(name: str):
    try:
        kind = catalog.get(name)
    except LookupError:
        abort(404)
    context = sample_context(kind, current_app.config["SITE_URL"])
    subject, text, html = rendering.render(name, context)
    return render_template("admin/email_preview.html", kind=kind, subject=subject, text=text, html=html,
                           context=context)
