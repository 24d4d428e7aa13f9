"""Membership jobs: take plain values or ids, reload, act, commit once."""

from __future__ import annotations

from celery import shared_task

from extensions import db
from membership import login_links, services


@shared_task(name="membership.send_login_link")
def send_login_link(email: str) -> None:
    """Queue a login-link email if ``email`` belongs to a member (runs after the /login response)."""
    services.queue_login_link(db.session, email)
    db.session.commit()


@shared_task(name="membership.prune_login_links")
def prune_login_links() -> None:
    login_links.prune(db.session)
    db.session.commit()
