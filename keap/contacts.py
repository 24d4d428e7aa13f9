"""Keeping the member's Keap contact in step with an email change here.

The lead's member-update service calls :func:`on_member_email_changed` after changing ``member.email``.
Whether our change is also written to the Keap contact is the owner's choice:
``COURSEGATE_KEAP_PUSH_EMAIL_CHANGES`` (default false).
"""

from __future__ import annotations

import hashlib
import logging

from flask import current_app
from sqlalchemy.orm import Session

import jobs
from keap import subscriptions
from keap.client import KeapClient, bool_setting, get_client
from keap.errors import KeapError
from membership.models import Member

logger = logging.getLogger(__name__)


def email_digest(email: str) -> str:
    """Jobs carry this instead of the address, so no email ends up in job logs or the broker."""
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def push_enabled() -> bool:
    return bool_setting(current_app.config, "PUSH_EMAIL_CHANGES", False)


def on_member_email_changed(session: Session, member: Member, old_email: str) -> None:
    """Call after ``member.email`` changed (flushes, never commits).

    - drops the member's cached Keap view;
    - if no Keap contact was remembered yet, looks the old email up in Keap and remembers what it finds, so
      the member keeps their billing view under the new address (Keap down: logged, the change goes on);
    - when the owner setting is on, queues a job (after commit) that writes the new email to the contacts.
    """
    subscriptions.forget(member.id)
    if not subscriptions.uses_keap(member) or old_email.strip().lower() == member.email:
        return
    if not subscriptions.remembered_contact_ids(session, member):
        try:
            for contact_id in subscriptions.contacts_for_email(get_client(), old_email):
                subscriptions.remember_contact(session, member, contact_id)
        except KeapError as exc:
            logger.warning("keap contact lookup for member %s after an email change failed (%s)", member.id,
                           exc.code)
    if push_enabled() and subscriptions.remembered_contact_ids(session, member):
        jobs.after_commit(session, "keap.push_email_change", member.id, email_digest(old_email))


def replace_email(addresses: list[dict], old_digest: str, new_email: str) -> list[dict] | None:
    """The contact's email slots with the old address replaced by the new one (EMAIL1 when the old one is
    not there). None when the new address is already in place."""
    slots = [dict(a) for a in addresses if isinstance(a, dict)]
    if any(str(a.get("email") or "").strip().lower() == new_email for a in slots):
        return None
    for slot in slots:
        if email_digest(str(slot.get("email") or "")) == old_digest:
            slot["email"] = new_email
            return slots
    for slot in slots:
        if str(slot.get("field") or "").upper() == "EMAIL1":
            slot["email"] = new_email
            return slots
    return [{"email": new_email, "field": "EMAIL1"}, *slots]


def push_email_change(session: Session, member: Member, old_digest: str,
                      client: KeapClient | None = None) -> list[str]:
    """Write the member's current email to each remembered contact. Returns the contact ids changed."""
    client = client or get_client()
    changed = []
    for contact_id in subscriptions.remembered_contact_ids(session, member):
        contact = client.get_contact(contact_id)
        slots = replace_email(contact.get("email_addresses") or [], old_digest, member.email)
        if slots is None:
            continue
        # Only the email slots are sent, and update_mask says so: nothing else on the contact is touched.
        client.update_contact_emails(contact_id, [{"email": s.get("email"), "field": s.get("field")}
                                                  for s in slots])
        changed.append(contact_id)
    subscriptions.forget(member.id)
    return changed
