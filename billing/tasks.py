"""The billing tick as a Celery task; beat runs it every few minutes when a broker is configured."""

from __future__ import annotations

import logging
import time

from celery import shared_task

import observability
from billing import charges, invitations, lifecycle
from billing.models import CardInvitation
from extensions import db

logger = logging.getLogger(__name__)


@shared_task(name="billing.tick")
def tick() -> str:
    started = time.perf_counter()
    report = lifecycle.tick(db.session)
    observability.BILLING_TICK_SECONDS.observe(time.perf_counter() - started)
    for outcome, count in report.outcomes.items():
        observability.BILLING_OUTCOMES.labels(outcome).inc(count)
    for outcome in ("expired", "issued", "unpaid"):
        if getattr(report, outcome):
            observability.BILLING_OUTCOMES.labels(outcome).inc(getattr(report, outcome))
    logger.info("billing tick: %s", report.summary())
    return report.summary()


@shared_task(name="billing.settle_payments")
def settle_payments() -> int:
    """Ask the gateway about every charge left in doubt (timed out, processing) that no webhook settled."""
    settled = charges.settle_open_attempts(db.session)
    if settled:
        logger.info("settled %s payment(s) left in doubt", settled)
    return settled


@shared_task(name="billing.send_card_invitation")
def send_card_invitation(invitation_id: int) -> None:
    """Make an invitation's link and send it (email, SMS). The link exists only in the messages."""
    invitation = db.session.get(CardInvitation, invitation_id, with_for_update=True)
    if invitation is None:
        db.session.rollback()
        return
    invitations.send(db.session, invitation)
    db.session.commit()
