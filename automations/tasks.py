"""Jobs: they take ids, reload rows and record outcomes. The periodic ones are listed in schedule.py."""

from __future__ import annotations

from celery import shared_task

from automations import webhooks
from extensions import db
from membership import grants


@shared_task(name="automations.deliver_webhook")
def deliver_webhook(delivery_id: int) -> None:
    webhooks.deliver(delivery_id)


@shared_task(name="automations.sweep_webhooks")
def sweep_webhooks() -> None:
    webhooks.sweep_due()


@shared_task(name="automations.run_due")
def run_due() -> None:
    grants.run_due_revocations(db.session)
    db.session.commit()
