"""The delivery job: takes an email id, reloads the row, sends it, records the outcome."""

from __future__ import annotations

from celery import shared_task

from emails import services


@shared_task(name="emails.deliver")
def deliver(email_id: int) -> None:
    services.deliver(email_id)


@shared_task(name="emails.sweep")
def sweep() -> None:
    services.sweep_pending()
