"""Membership jobs: take plain values or ids, reload, act, commit once."""

from __future__ import annotations

from celery import shared_task

from membership import login_links, services
from transactions import unit_of_work


@shared_task(name="membership.send_login_link")
def send_login_link(email: str) -> None:
    """Queue a login-link email if ``email`` belongs to a member (runs after the /login response)."""
    with unit_of_work() as session:
        services.queue_login_link(session, email)


@shared_task(name="membership.prune_login_links")
def prune_login_links() -> None:
    with unit_of_work() as session:
        login_links.prune(session)
