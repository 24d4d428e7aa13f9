"""The admin's blueprint and what its pages share: sign-in and CSRF on every request, globals for the
layout, form submission with domain errors shown on the form, pagination."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

import marshmallow as ma
from flask import Blueprint, request
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from admin import auth
from errors import CoursegateError
from extensions import csrf, db

T = TypeVar("T")

bp = Blueprint("admin", __name__, url_prefix="/admin", static_url_path="/static",
               static_folder=os.path.join(os.path.dirname(os.path.dirname(__file__)), "static"))
bp.before_request(csrf.protect)  # every POST carries the session's CSRF token, sign-in included
bp.before_request(auth.require_owner)


@dataclass(frozen=True)
class NavItem:
    endpoint: str
    label: str


NAV: list[NavItem] = [
    NavItem("admin.dashboard", "Dashboard"),
    NavItem("admin.members", "Members"),
    NavItem("admin.courses", "Courses"),
    NavItem("admin.levels", "Levels"),
    NavItem("admin.integrations", "Integrations"),
    NavItem("admin.events", "Events"),
    NavItem("admin.emails", "Emails"),
    NavItem("admin.plans", "Plans"),
    NavItem("admin.mandates", "Subscriptions"),
    NavItem("admin.invoices", "Invoices"),
    NavItem("admin.automations", "Automations"),
    NavItem("admin.api_keys", "API keys"),
    NavItem("admin.account", "Your account"),
]


@dataclass(frozen=True)
class MemberSection:
    title: str
    template: str  # included in the member's page, with ``member`` and ``panel`` (what ``load`` returned)
    load: Callable[[Session, Any], dict]


MEMBER_SECTIONS: list[MemberSection] = []


@dataclass(frozen=True)
class DashboardCount:
    label: str
    value: Callable[[Session], int]
    endpoint: str | None = None


DASHBOARD_COUNTS: list[DashboardCount] = []


@bp.context_processor
def admin_globals():
    return {"admin_nav": NAV}


@bp.after_request
def no_store(response):
    # Pages show secrets once and personal data: never cache them. (Framing, CSP: security.ADMIN_POLICY.)
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@dataclass
class Page:
    items: list
    page: int
    per_page: int
    total: int
    args: dict = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def field_error(form, error: CoursegateError, default_field: str | None = None) -> None:
    """Show a service's refusal next to the field it concerns, or above the form."""
    fields = {name: getattr(form, name) for name in (error.errors or {}) if hasattr(form, name)}
    if fields:
        for name, target in fields.items():
            target.errors = [*target.errors, *error.errors[name]]
    elif default_field is not None:
        target = getattr(form, default_field)
        target.errors = [*target.errors, error.message]
    else:
        form.form_errors.append(error.message)


def flatten_messages(messages) -> list[str]:
    """marshmallow's nested error messages as a flat list of sentences."""
    if isinstance(messages, dict):
        return [m for value in messages.values() for m in flatten_messages(value)]
    if isinstance(messages, (list, tuple)):
        return [m for value in messages for m in flatten_messages(value)]
    return [str(messages)]


def load_with(schema, data: dict, form) -> dict | None:
    """Load ``data`` through the API's own schema, so the page checks exactly what the API checks; on a
    refusal put each message next to its field (or above the form) and return None."""
    try:
        return schema.load(data)
    except ma.ValidationError as error:
        messages = error.messages if isinstance(error.messages, dict) else {"_schema": error.messages}
        for name, value in messages.items():
            target = getattr(form, name, None)
            if target is not None and hasattr(target, "errors") and name != "_schema":
                target.errors = [*(target.errors or []), *flatten_messages(value)]
            else:
                form.form_errors.extend(flatten_messages(value))
        return None


def submit(form, action: Callable[[], T], *, default_field: str | None = None) -> T | None:
    """A form post: validate and run the service (the request commits once the page answers). On a refusal,
    roll back and put the message on the form. Returns what the service returned, or None when the form must
    be shown again."""
    if not form.validate_on_submit():
        return None
    try:
        result = action()
    except CoursegateError as error:
        db.session.rollback()
        field_error(form, error, default_field)
        return None
    return result


def form_status(form) -> int:
    return 422 if form.errors else 200


def paginate(query, per_page: int = 50) -> Page:
    """One page of a ``Select`` (``?page=``), with the total for the pager."""
    page = request.args.get("page", 1, type=int) or 1
    page = max(page, 1)
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    items = db.session.scalars(query.offset((page - 1) * per_page).limit(per_page)).unique().all()
    args = {k: v for k, v in request.args.items() if k != "page"}
    return Page(items=list(items), page=page, per_page=per_page, total=total, args=args)
