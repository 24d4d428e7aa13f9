"""The delivery jobs: take an email id (or a batch's ids), reload the row, send it, record the outcome."""

from __future__ import annotations

from celery import shared_task

from emails import services


@shared_task(name="emails.deliver")
def deliver(email_id: int) -> None:
    services.deliver(email_id)


@shared_task(name="emails.deliver_many")
def deliver_many(email_ids: list[int]) -> None:
    """A batch's emails (a batch of cart orders): one job, so one message to the broker, for all of them."""
    for email_id in email_ids:
        services.deliver(email_id)


@shared_task(name="emails.sweep")
def sweep() -> None:
    services.sweep_pending()
