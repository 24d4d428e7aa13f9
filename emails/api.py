"""Owner API for the outbox and the owner's email text. The owner-key check is attached by the app
factory (emails imports no other domain)."""

from __future__ import annotations

from flask_smorest import Blueprint
from sqlalchemy import or_, select

from emails import catalog, services
from emails.models import EmailTemplateOverride, OutboundEmail
from emails.schemas import (EmailArgs, EmailDetailOut, EmailOut, PreviewIn, PreviewOut, TemplateIn, TemplateOut,
                            template_view)
from extensions import db
from pagination import PAGE_SIZE, SelectPage

blp = Blueprint("emails_api", __name__, url_prefix="/api/v1",
                description="The outbox (every email, its status and attempts) and the owner's email text.")


@blp.route("/emails", methods=["GET"])
@blp.arguments(EmailArgs, location="query", as_kwargs=True)
@blp.response(200, EmailOut(many=True))
@blp.paginate(SelectPage, **PAGE_SIZE)
def list_emails(recipient=None, template=None, status=None):
    """List emails, newest first; filter by recipient, template and status."""
    query = select(OutboundEmail).order_by(OutboundEmail.id.desc())
    if recipient:
        raw = recipient.strip()
        query = query.where(or_(OutboundEmail.recipient == raw, OutboundEmail.recipient == raw.lower()))
    if template:
        query = query.where(OutboundEmail.template == template)
    if status:
        query = query.where(OutboundEmail.status == status)
    return query


@blp.route("/emails/<int:email_id>", methods=["GET"])
@blp.response(200, EmailDetailOut)
def get_email(email_id):
    """One email with its rendered text and HTML (login links hidden)."""
    return services.get_email(db.session, email_id)


@blp.route("/emails/<int:email_id>/resend", methods=["POST"])
@blp.response(202, EmailOut)
@blp.alt_response(409, description="invitation_not_resendable: an invitation's link is never stored; send a new "
                  "invitation. email_cannot_be_resent: the member a login email was for no longer exists.")
def resend_email(email_id):
    """Send again: a pending email is tried now; a sent or failed one is copied to a new pending email.

    A welcome or login-link email is rendered anew with a new login link (the stored one may have expired or
    been used), to the member's current address."""
    email = services.resend(db.session, services.get_email(db.session, email_id))
    return email


@blp.route("/email-templates", methods=["GET"])
@blp.response(200, TemplateOut(many=True))
def list_templates():
    """Every email the service sends, its placeholders, and the owner's text if any."""
    overrides = {o.template: o for o in db.session.scalars(select(EmailTemplateOverride))}
    return [template_view(kind, overrides.get(name)) for name, kind in sorted(catalog.CATALOG.items())]


@blp.route("/email-templates/<name>", methods=["GET"])
@blp.response(200, TemplateOut)
def get_template(name):
    return template_view(services.template_kind(name), services.get_override(db.session, name))


@blp.route("/email-templates/<name>", methods=["PUT"])
@blp.arguments(TemplateIn)
@blp.response(200, TemplateOut)
def put_template(data, name):
    """Set the owner's subject and/or body text. Placeholders are checked: an unknown one is refused with 422
    ``unknown_placeholder``, a required one left out with 422 ``missing_placeholder``."""
    override = services.set_override(db.session, name, subject=data["subject"], body=data["body"])
    return template_view(services.template_kind(name), override)


@blp.route("/email-templates/<name>", methods=["DELETE"])
@blp.response(204)
def delete_template(name):
    """Back to the built-in subject and body."""
    services.delete_override(db.session, name)


@blp.route("/email-templates/<name>/preview", methods=["POST"])
@blp.arguments(PreviewIn)
@blp.response(200, PreviewOut)
def preview_template(data, name):
    """Render the email with sample values: the current text, or the subject/body given (checked like PUT)."""
    subject, text, html = services.preview(db.session, name, subject=data["subject"], body=data["body"])
    return {"subject": subject, "text": text, "html": html}
