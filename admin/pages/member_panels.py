"""Panels on a member's page (``MEMBER_SECTIONS``): the cart orders behind their grants, their cart events, their
tags (added and removed through the automations so rules run) and their own subscriptions with invoices."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from flask import flash, redirect, request, url_for
from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session, selectinload

from admin.forms import TagForm
from admin.pages.blueprint import MEMBER_SECTIONS, MemberSection, bp, field_error
from billing.models import Invoice, Mandate
from errors import CoursegateError
from extensions import db
from fulfillment.models import Integration, WebhookEvent
from membership import tags as member_tags
from membership.errors import MemberNotFound
from membership.models import Grant, GrantSourceKind, Member

PANEL_ROWS = 20


@dataclass
class Order:
    integration: Integration | None
    order_ref: str
    grants: list[Grant] = field(default_factory=list)
    events: list[WebhookEvent] = field(default_factory=list)


def member_orders(session: Session, member: Member) -> dict:
    """The cart orders behind the member's grants, each with its lines and the deliveries that named it."""
    grants = session.scalars(select(Grant).where(Grant.member_id == member.id,
                                                 Grant.source_kind == GrantSourceKind.ORDER)
                             .order_by(Grant.id.desc())).all()
    orders: dict[tuple, Order] = {}
    for grant in grants:
        key = (grant.integration_id, grant.order_ref)
        if key not in orders:
            integration = session.get(Integration, grant.integration_id) if grant.integration_id else None
            orders[key] = Order(integration, grant.order_ref or "—")
        orders[key].grants.append(grant)
    chosen = list(orders.values())[:PANEL_ROWS]
    keys = [and_(WebhookEvent.integration_id == order.integration.id, WebhookEvent.order_ref == order.order_ref)
            for order in chosen if order.integration is not None and order.order_ref != "—"]
    if keys:
        for event in session.scalars(select(WebhookEvent).where(or_(*keys)).order_by(WebhookEvent.id)):
            order = orders.get((event.integration_id, event.order_ref))
            if order is not None:
                order.events.append(event)
    return {"orders": chosen}


def member_events(session: Session, member: Member) -> dict:
    """Cart deliveries for the member's email, or for the cart's id for them (when they changed their email)."""
    buyers = session.execute(select(WebhookEvent.integration_id, WebhookEvent.customer_ref)
                             .where(WebhookEvent.email == member.email, WebhookEvent.customer_ref.is_not(None))
                             .distinct().limit(PANEL_ROWS)).all()
    same_buyer = [and_(WebhookEvent.integration_id == integration_id, WebhookEvent.customer_ref == customer_ref)
                  for integration_id, customer_ref in buyers]
    rows = session.scalars(select(WebhookEvent).where(or_(WebhookEvent.email == member.email, *same_buyer))
                           .order_by(WebhookEvent.id.desc()).limit(PANEL_ROWS)).all()
    return {"events": rows}


def member_tag_panel(session: Session, member: Member) -> dict:
    return {"tags": member_tags.member_tags(session, member.id), "form": TagForm(formdata=None), "origin": tag_origin}


def tag_origin(row) -> str:
    """Where a tag came from, in the owner's words: the stored source is an internal reference such as
    ``order_completed order:1:50001:product-12`` (the automation event's trigger and key)."""
    source = row.source or ""
    if row.applied_by == member_tags.AppliedBy.OWNER:
        return "added by hand" + (" (API)" if "API" in source else "")
    if row.applied_by == member_tags.AppliedBy.AUTOMATION:
        return f"added by automation {source}" if source else "added by an automation"
    if row.applied_by == member_tags.AppliedBy.IMPORT:
        return "imported"
    trigger, _, key = source.partition(" ")
    if source.startswith("keap webhook:"):
        return "from a Keap campaign post"
    parts = key.split(":")
    what = trigger.replace("_", " ") if trigger else "a cart event"
    if len(parts) >= 4 and parts[0] in ("order", "refund"):
        return f"on {what}: order {parts[2]}, {parts[3]}"
    return f"on {what}"


def member_subscriptions(session: Session, member: Member) -> dict:
    mandates = session.scalars(select(Mandate).options(selectinload(Mandate.payment_method))
                               .where(Mandate.member_id == member.id).order_by(Mandate.id.desc())
                               .limit(PANEL_ROWS)).all()
    invoices = session.scalars(select(Invoice).where(Invoice.member_id == member.id).order_by(Invoice.id.desc())
                               .limit(PANEL_ROWS)).all()
    return {"mandates": mandates, "invoices": invoices}


MEMBER_SECTIONS.extend([
    MemberSection("Orders", "admin/member_orders.html", member_orders),
    MemberSection("Cart events", "admin/member_events.html", member_events),
    MemberSection("Tags", "admin/member_tags.html", member_tag_panel),
    MemberSection("Subscriptions", "admin/member_subscriptions.html", member_subscriptions),
])


def _member(member_id: int) -> Member:
    member = db.session.get(Member, member_id)
    if member is None:
        raise MemberNotFound()
    return member


def _back(member: Member):
    return redirect(url_for("admin.member", member_id=member.id) + "#tags")


@bp.post("/members/<int:member_id>/tags")
def member_tag_add(member_id: int):
    """Tag the member as the owner; ``tag_added`` automations run, as with POST /api/v1/members/<id>/tags."""
    member = _member(member_id)
    form = TagForm()
    if not form.validate_on_submit():
        flash(" ".join(form.tag.errors) or "Enter a tag.", "bad")
        return _back(member)
    try:
        added = member_tags.tag_member(db.session, member, form.tag.data,
                                           applied_by=member_tags.AppliedBy.OWNER, source="owner admin",
                                           event_key=f"owner:{uuid.uuid4().hex}")
    except CoursegateError as error:
        db.session.rollback()
        field_error(form, error, "tag")
        flash(" ".join(form.tag.errors), "bad")
        return _back(member)
    name = member_tags.normalise_tag_name(form.tag.data)
    flash(f"Tagged {member.email} with “{name}”." if added else f"{member.email} already carries “{name}”.")
    return _back(member)


@bp.post("/members/<int:member_id>/tags/remove")
def member_tag_remove(member_id: int):
    member = _member(member_id)
    name = request.form.get("name", "")
    if not member_tags.untag_member(db.session, member, name, event_key=f"owner:{uuid.uuid4().hex}"):
        db.session.rollback()
        flash("The member does not carry that tag.", "bad")
        return _back(member)
    flash(f"Removed “{member_tags.normalise_tag_name(name)}” from {member.email}.")
    return _back(member)
