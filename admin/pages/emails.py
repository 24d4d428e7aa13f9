"""The outbox (status, error, resend) and a preview of every email in the catalogue."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from admin.pages.blueprint import bp, paginate
from emails import catalog
from emails import services as email_services
from emails.errors import CannotResend
from emails.models import EmailStatus, OutboundEmail
from emails.schemas import redact
from extensions import db

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
    # The bodies as the API shows them: what each link was, never a link that works.
    return render_template("admin/email.html", email=row, text_body=redact(row.text_body),
                           html_body=redact(row.html_body))


@bp.post("/emails/<int:email_id>/resend")
def email_resend(email_id: int):
    row = db.session.get(OutboundEmail, email_id)
    if row is None:
        abort(404)
    # A pending email is tried now; a sent or failed one is copied, so the original stays as the record.
    try:
        queued = email_services.resend(db.session, row)
    except CannotResend as error:
        db.session.rollback()
        flash(error.message, "bad")
        return redirect(url_for("admin.email", email_id=email_id))
    flash(f"Email #{queued.id} to {queued.recipient} is queued.")
    return redirect(url_for("admin.email", email_id=queued.id))


@bp.get("/emails/templates")
def email_templates():
    return render_template("admin/email_templates.html", kinds=sorted(catalog.CATALOG.values(), key=lambda k: k.name))


@bp.get("/emails/templates/<name>")
def email_preview(name: str):
    try:
        kind = catalog.get(name)
    except LookupError:
        abort(404)
    # The same sample values and owner text as the API's preview.
    subject, text, html = email_services.preview(db.session, name)
    return render_template("admin/email_preview.html", kind=kind, subject=subject, text=text, html=html)
