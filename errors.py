"""The one error contract: ``{"code": "<stable_snake_case>", "message": "<for a person>", "errors": {...}?}``.

Domain packages subclass :class:`CoursegateError`; handlers registered in ``create_app`` turn these,
marshmallow/webargs validation errors and HTTP exceptions into that shape for ``/api`` and
``/webhooks``, and into HTML pages everywhere else.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from apispec import BasePlugin


class CoursegateError(Exception):
    status = 400
    code = "bad_request"
    message = "The request could not be handled."

    def __init__(self, message: str | None = None, *, code: str | None = None, status: int | None = None,
                 errors: dict[str, Any] | None = None):
        super().__init__(message or self.message)
        self.message = message or self.message
        if code:
            self.code = code
        if status:
            self.status = status
        self.errors = errors

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.errors:
            body["errors"] = self.errors
        return body


class NotFound(CoursegateError):
    status = 404
    code = "not_found"
    message = "Nothing was found at that address."


class Conflict(CoursegateError):
    status = 409
    code = "conflict"
    message = "That conflicts with something that already exists."


class Unprocessable(CoursegateError):
    status = 422
    code = "validation_error"
    message = "Some fields are missing or invalid."


class Unauthorized(CoursegateError):
    status = 401
    code = "unauthorized"
    message = "A valid API key is required: send 'Authorization: Bearer <key>'."


class ErrorSchema(ma.Schema):
    """Documents the error body in the OpenAPI spec (never used to dump)."""

    code = ma.fields.String(required=True, metadata={"description": "Stable snake_case error code", "example": "not_found"})
    message = ma.fields.String(required=True, metadata={"description": "What went wrong, for a person"})
    errors = ma.fields.Dict(metadata={"description": "Per-field problems, when the input was invalid"})


# HTTP statuses that reach the handler without a domain error get these stable codes.
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ErrorResponsesPlugin(BasePlugin):
    """apispec plugin: document the errors every owner API operation can answer with."""

    def operation_helper(self, path=None, operations=None, **kwargs):
        if not path or not path.startswith("/api/v1/") or not operations:
            return
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.setdefault("401", "UNAUTHORIZED")
            if "{" in path:
                responses.setdefault("404", "NOT_FOUND")
            if method in ("post", "put", "patch"):
                responses.setdefault("409", "CONFLICT")
