"""Blueprint "admin" at /admin: the owner's dashboard. Each area's routes live in a module beside this one.

Later domains plug in here rather than editing the areas:
- ``NAV``: the sidebar (endpoint, label).
- ``MEMBER_SECTIONS``: extra panels on a member's page (orders, events, tags, subscriptions: member_panels.py),
  each a template plus a loader ``(session, member) -> context``.
- ``DASHBOARD_COUNTS``: extra dashboard figures, e.g. "events needing attention" (events.py).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

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


def submit(form, action: Callable[[], T], *, default_field: str | None = None) -> T | None:
    """The boundary for a form post: validate, run the service, commit once. On a refusal, roll back and put
    the message on the form. Returns what the service returned, or None when the form must be shown again."""
    if not form.validate_on_submit():
        return None
    try:
        result = action()
    except CoursegateError as error:
        db.session.rollback()
        field_error(form, error, default_field)
        return None
    db.session.commit()
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


from admin.pages import account, catalog, dashboard, emails, integrations, members  # noqa: E402,F401
from admin.pages import automations, billing, events, invitations, member_panels  # noqa: E402,F401
