"""The billing tick as a Celery task; beat runs it every few minutes when a broker is configured."""

from __future__ import annotations

import logging

from celery import shared_task

from extensions import db

logger = logging.getLogger(__name__)


@shared_task(name="billing.tick")
def tick() -> str:
    from billing import lifecycle

    report = lifecycle.tick(db.session)
    logger.info("billing tick: %s", report.summary())
    return report.summary()
