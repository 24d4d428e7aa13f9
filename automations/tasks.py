"""Jobs: they take ids, reload rows and record outcomes. Periodic ones are declared in ``PERIODIC``."""

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


# For the beat schedule (task name, every N seconds): retries due, and revocations whose time has come.
PERIODIC = (
    ("automations.sweep_webhooks", 60),
    ("automations.run_due", 300),
)
