"""Keap jobs: they take ids (and a digest, never an address)."""

from __future__ import annotations

import logging

from celery import shared_task

from extensions import db
from keap import contacts
from keap.errors import KeapError, KeapUnavailable
from membership.models import Member

logger = logging.getLogger(__name__)


@shared_task(name="keap.push_email_change", bind=True, max_retries=5)
def push_email_change(self, member_id: int, old_email_digest: str) -> None:
    member = db.session.get(Member, member_id)
    if member is None:
        return
    try:
        changed = contacts.push_email_change(db.session, member, old_email_digest)
    except KeapUnavailable as exc:
        if self.request.called_directly:  # the embedded default: nothing would retry it
            logger.warning("keap email push for member %s failed (%s); not retried", member_id, exc.code)
            return
        raise self.retry(countdown=60 * 2 ** self.request.retries) from None
    except KeapError as exc:
        logger.warning("keap email push for member %s was refused (%s)", member_id, exc.code)
        return
    finally:
        db.session.rollback()
    logger.info("keap email push for member %s updated %s contact(s)", member_id, len(changed))
