"""Jobs: take ids (or nothing), reload rows, commit at their own boundary."""

from __future__ import annotations

from celery import shared_task

from extensions import db
from fulfillment import services


@shared_task(name="fulfillment.run_due_revocations")
def run_due_revocations() -> int:
    count = services.run_due_revocations(db.session)
    db.session.commit()
    return count


# Periodic jobs of this domain, as data: (task name, seconds between runs).
PERIODIC = [("fulfillment.run_due_revocations", 300)]
