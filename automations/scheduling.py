"""Work decided now and done later: a revocation at the end of a grace period (``Grant.revoke_at``)."""

from __future__ import annotations

import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

import timeutil
from membership.models import Grant, GrantStatus

logger = logging.getLogger(__name__)


def run_due(session: Session, limit: int = 1000) -> int:
    """Revoke every grant whose ``revoke_at`` has passed, with its scheduled reason, firing ``grant_revoked``.

    Flushes, never commits (the periodic job or CLI commits). Returns how many grants were revoked.
    """
    from automations.actions import revoke_now

    moment = timeutil.now()
    due = list(session.scalars(
        select(Grant)
        .where(Grant.revoke_at.is_not(None), Grant.revoke_at <= moment,
               Grant.status.not_in([GrantStatus.REVOKED, GrantStatus.EXPIRED]))
        .order_by(Grant.revoke_at, Grant.id)
        .limit(limit)
        .with_for_update(skip_locked=True, of=Grant)
    ).unique())
    for grant in due:
        reason = grant.scheduled_revoke_reason or "scheduled"
        revoke_now(session, grant, reason)
        logger.info("grant %s revoked on schedule (%s)", grant.id, reason)
    return len(due)
