"""Jobs: they take ids, reload rows and record outcomes. The periodic ones are listed in schedule.py."""

from __future__ import annotations

from celery import shared_task

from automations import webhooks
from membership import grants
from transactions import unit_of_work


@shared_task(name="automations.deliver_webhook")
def deliver_webhook(delivery_id: int) -> None:
    webhooks.deliver(delivery_id)


@shared_task(name="automations.sweep_webhooks")
def sweep_webhooks() -> None:
    webhooks.sweep_due()


@shared_task(name="automations.run_due")
def run_due() -> None:
    with unit_of_work() as session:
        grants.run_due_revocations(session)
