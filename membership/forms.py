"""marshmallow schemas for the member pages' forms (the browser edge). Unknown fields such as
``csrf_token`` are ignored here; CSRF is checked before the view runs."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from membership.emails import is_usable_email


class FormSchema(ma.Schema):
    class Meta:
        unknown = ma.EXCLUDE


def _usable(value: str) -> None:
    if not is_usable_email(value):
        raise ma.ValidationError("That does not look like an email address; check it for typos.")


class LoginRequestForm(FormSchema):
    email = ma.fields.String(required=True, validate=[validate.Length(min=3, max=320,
                                                                      error="Enter your email address."), _usable],
                             error_messages={"required": "Enter your email address."})


class PasswordLoginForm(FormSchema):
    email = ma.fields.String(required=True, validate=validate.Length(min=3, max=320),
                             error_messages={"required": "Enter your email address."})
    password = ma.fields.String(required=True, validate=validate.Length(min=1, max=200),
                                error_messages={"required": "Enter your password."})


class SetPasswordForm(FormSchema):
    password = ma.fields.String(required=True, validate=validate.Length(
        min=10, max=200, error="Use at least {min} characters."))
    confirm = ma.fields.String(required=True)

    @ma.validates_schema
    def _same(self, data, **kwargs):
        if data.get("password") != data.get("confirm"):
            raise ma.ValidationError("The two passwords are not the same.", "confirm")


def first_errors(error: ma.ValidationError) -> dict[str, str]:
    """``{"field": "first message"}`` for showing next to each form field."""
    out = {}
    for name, messages in error.normalized_messages().items():
        out[name] = messages[0] if isinstance(messages, list) else str(messages)
    return out
