"""Emails about access a member has just been given: the welcome email for a new member, and (when the owner
turns it on for a cart) "you now have access to ..." for an existing one.

Fulfillment calls :func:`queue_order_emails` once for a batch of orders, with the levels each has just granted.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import current_app
from sqlalchemy.orm import Session

from emails import services as email_services
from membership import services
from membership.courses import course_links
from membership.models import Level, Member


def access_added_context(member: Member, levels: list[Level]) -> dict:
    return {"member_name": member.name or "there", "levels": [level.name for level in levels],
            "courses": course_links(levels), "account_url": f"{current_app.config['SITE_URL']}/account"}


def _access_added(member: Member, levels: list[Level], event_key: str) -> tuple:
    """Once per (member, order): a redelivered order grants nothing new and finds the key used."""
    return ("access_added", member.email, access_added_context(member, levels),
            f"access_added:member:{member.id}:{event_key}"[:200], member.id)


@dataclass(frozen=True)
class OrderEmails:
    """What one order has just given one member: the levels, whether the order created them, and whether its
    cart's owner wants existing members told."""
    member: Member
    levels: list[Level]
    created: bool
    access_added_email: bool
    event_key: str


def queue_order_emails(session: Session, orders: list[OrderEmails]) -> None:
    """For each order: the welcome email for a member it created; else, if the cart's owner asked for it, the
    "you now have access to" email listing the levels it has just opened. One statement for a batch."""
    messages = []
    for order in orders:
        if order.created:
            messages.append(services.welcome_message(order.member, order.levels))
        elif order.access_added_email and order.levels:
            messages.append(_access_added(order.member, order.levels, order.event_key))
    email_services.enqueue_many(session, messages)
