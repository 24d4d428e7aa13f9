"""Keap hears the domain's signals: a member's new email keeps their Keap link (imported by ``create_app``)."""

from __future__ import annotations

import signals
from keap import contacts


@signals.member_email_changed.connect
def _email_changed(session, *, member, old_email: str) -> None:
    contacts.on_member_email_changed(session, member, old_email)
