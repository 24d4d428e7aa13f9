"""Emails about access a member has just been given: the welcome email for a new member, and (when the owner
turns it on for a cart) "you now have access to ..." for an existing one.

Fulfillment calls :func:`queue_order_emails` once per order with the levels it has just granted.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy.orm import Session

from emails import services as email_services
from membership import services
from membership.courses import course_links
from membership.models import Level, Member


def access_added_context(member: Member, levels: list[Level]) -> dict:
    return {"member_name": member.name or "there", "levels": [level.name for level in levels],
            "courses": course_links(levels), "account_url": f"{current_app.config['SITE_URL']}/account"}


def queue_access_added(session: Session, member: Member, levels: list[Level], *, event_key: str) -> None:
    """Once per (member, order): a redelivered order grants nothing new and finds the key used."""
    if levels:
        email_services.enqueue(session, "access_added", member.email, access_added_context(member, levels),
                               dedupe_key=f"access_added:member:{member.id}:{event_key}"[:200],
                               member_id=member.id)


def queue_order_emails(session: Session, member: Member, levels: list[Level], *, created: bool,
                       access_added_email: bool, event_key: str) -> None:
    """The welcome email for a member this order created; else, if the cart's owner asked for it, the
    "you now have access to" email listing the levels the order has just opened."""
    if created:
        services.queue_welcome_email(session, member, levels)
    elif access_added_email:
        queue_access_added(session, member, levels, event_key=event_key)
