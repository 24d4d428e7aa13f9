"""Jobs: they take ids, reload rows and record outcomes. The periodic ones are listed in schedule.py."""

from __future__ import annotations

from celery import shared_task

from extensions import db


@shared_task(name="automations.deliver_webhook")
def deliver_webhook(delivery_id: int) -> None:
    from automations import webhooks

    webhooks.deliver(delivery_id)


@shared_task(name="automations.sweep_webhooks")
def sweep_webhooks() -> None:
    from automations import webhooks

    webhooks.sweep_due()


@shared_task(name="automations.run_due")
def run_due() -> None:
    from automations import scheduling

    scheduling.run_due(db.session)
    db.session.commit()
