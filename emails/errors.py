from __future__ import annotations

from errors import Conflict, NotFound, Unprocessable


class EmailNotFound(NotFound):
    code = "email_not_found"
    message = "No email has that id."


class UnknownTemplate(NotFound):
    code = "email_template_not_found"
    message = "No email template has that name."


class BadPlaceholders(Unprocessable):
    """Owner text with a placeholder that is malformed, unknown, or (required and) missing."""

    code = "invalid_placeholder"
    message = "The text uses placeholders this email does not have, or leaves out one it needs."


class CannotResend(Conflict):
    """The email carried a link that is a credential and cannot be made again for this email."""

    code = "email_cannot_be_resent"
    message = "This email cannot be sent again."
