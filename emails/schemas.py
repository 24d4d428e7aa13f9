"""marshmallow schemas for the owner's email API."""

from __future__ import annotations

import re

import marshmallow as ma
from marshmallow import validate

from emails import credentials
from emails.models import EmailStatus
from schemas_common import QueryArgs, StrictSchema

# Links that are credentials are stored as markers (emails/credentials.py); emails stored before that may still
# hold a login or invoice link, which is never shown.
_OLD_TOKEN = re.compile(r"(/login/|/invoices/\d+\?t=)[A-Za-z0-9_.\-]{20,}")


def redact(body: str) -> str:
    return credentials.shown(_OLD_TOKEN.sub(r"\1[link hidden]", body))


class EmailArgs(QueryArgs):
    recipient = ma.fields.String(metadata={"description": "Exact recipient address (any case)"})
    template = ma.fields.String(metadata={"description": "Template name, e.g. welcome"})
    status = ma.fields.String(validate=validate.OneOf([s.value for s in EmailStatus]))


class EmailOut(ma.Schema):
    id = ma.fields.Integer()
    recipient = ma.fields.String()
    template = ma.fields.String()
    subject = ma.fields.String()
    status = ma.fields.String(metadata={"description": "pending, sent, or failed (gave up after the last retry)"})
    attempts = ma.fields.Integer()
    last_error = ma.fields.String(allow_none=True)
    next_attempt_at = ma.fields.DateTime(allow_none=True)
    dedupe_key = ma.fields.String(allow_none=True)
    member_id = ma.fields.Integer(allow_none=True)
    resent_from_id = ma.fields.Integer(allow_none=True)
    created_at = ma.fields.DateTime()
    sent_at = ma.fields.DateTime(allow_none=True)


class EmailDetailOut(EmailOut):
    text_body = ma.fields.Function(lambda email: redact(email.text_body),
                                   metadata={"description": "Plain-text part (login links hidden)"})
    html_body = ma.fields.Function(lambda email: redact(email.html_body),
                                   metadata={"description": "HTML part (login links hidden)"})


class TemplateIn(StrictSchema):
    subject = ma.fields.String(allow_none=True, load_default=None, validate=validate.Length(min=1, max=300),
                               metadata={"description": "Subject with {placeholders}; null for the default"})
    body = ma.fields.String(allow_none=True, load_default=None, validate=validate.Length(min=1, max=20000),
                            metadata={"description": "Body text with {placeholders} (blank line = new paragraph); "
                                                     "null for the default"})

    @ma.validates_schema
    def _something(self, data, **kwargs):
        if not data.get("subject") and not data.get("body"):
            raise ma.ValidationError("Give a subject, a body, or both (DELETE restores the defaults).", "_schema")


class PreviewIn(StrictSchema):
    subject = ma.fields.String(allow_none=True, load_default=None, validate=validate.Length(min=1, max=300),
                               metadata={"description": "Text to try; omit for the current subject"})
    body = ma.fields.String(allow_none=True, load_default=None, validate=validate.Length(min=1, max=20000),
                            metadata={"description": "Text to try; omit for the current body"})


class PreviewOut(ma.Schema):
    subject = ma.fields.String()
    text = ma.fields.String()
    html = ma.fields.String()


class TemplateOut(ma.Schema):
    name = ma.fields.String()
    description = ma.fields.String()
    placeholders = ma.fields.List(ma.fields.String(), metadata={"description": "Usable in subject and body"})
    required_placeholders = ma.fields.List(ma.fields.String(), metadata={"description": "The body must keep these"})
    default_subject = ma.fields.String()
    subject = ma.fields.String(allow_none=True, metadata={"description": "The owner's subject, or null"})
    body = ma.fields.String(allow_none=True, metadata={"description": "The owner's body text, or null"})
    overridden = ma.fields.Boolean()
    updated_at = ma.fields.DateTime(allow_none=True)


def template_view(kind, override) -> dict:
    return {
        "name": kind.name,
        "description": kind.description,
        "placeholders": sorted(kind.placeholders),
        "required_placeholders": sorted(kind.body_required),
        "default_subject": kind.subject,
        "subject": override.subject if override else None,
        "body": override.body if override else None,
        "overridden": override is not None,
        "updated_at": override.updated_at if override else None,
    }
