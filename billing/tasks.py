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


@shared_task(name="billing.send_card_invitation")
def send_card_invitation(invitation_id: int) -> None:
    """Make an invitation's link and send it (email, SMS). The link exists only in the messages."""
    from billing import invitations
    from billing.models import CardInvitation

    invitation = db.session.get(CardInvitation, invitation_id, with_for_update=True)
    if invitation is None:
        db.session.rollback()
        return
    invitations.send(db.session, invitation)
    db.session.commit()
