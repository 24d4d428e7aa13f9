"""The automations hear the domain's signals (``signals.py``) and fire the matching trigger.

Imported once by ``create_app``; connecting is declarative, so every app in the process hears the same
signals (they carry their session, so a listener works in whichever app sent them).
"""

from __future__ import annotations

import signals
from automations import triggers
from automations.models import Trigger

# Domain signal -> the trigger rules and outgoing webhooks subscribe to. Each signal carries fire()'s arguments.
_AS_TRIGGER = {
    signals.order_line_refunded: Trigger.LINE_REFUNDED,
    signals.subscription_cancelled: Trigger.SUBSCRIPTION_CANCELLED,
    signals.subscription_paused: Trigger.SUBSCRIPTION_PAUSED,
    signals.subscription_resumed: Trigger.SUBSCRIPTION_RESUMED,
    signals.cancel_scheduled: Trigger.CANCEL_SCHEDULED,
    signals.payment_failed: Trigger.PAYMENT_FAILED,
    signals.payment_recovered: Trigger.PAYMENT_RECOVERED,
    signals.card_updated: Trigger.CARD_UPDATED,
    signals.member_untagged: Trigger.TAG_REMOVED,
}


def _firing(trigger: str):
    def fire(session, *, depth: int = 0, **event) -> None:
        triggers.fire(session, trigger, _depth=depth, **event)

    fire.__name__ = f"fire_{trigger}"
    return fire


for _signal, _trigger in _AS_TRIGGER.items():
    _signal.connect(_firing(_trigger), weak=False)


def _firing_many(trigger: str):
    def fire_many(session, *, events: list[dict], depth: int = 0) -> None:
        triggers.fire_many(session, trigger, events, depth=depth)

    fire_many.__name__ = f"fire_many_{trigger}"
    return fire_many


# Signals that carry many events at once (a batch of orders, a batch of taggings).
signals.order_lines_granted.connect(_firing_many(Trigger.ORDER_COMPLETED), weak=False)
signals.members_tagged.connect(_firing_many(Trigger.TAG_ADDED), weak=False)


@signals.grants_revoked.connect
def _grant_revoked(session, *, grants, reason: str, depth: int = 0) -> None:
    """One ``grant_revoked`` per grant, keyed on the grant and the moment, so a grant revoked, reopened and
    revoked again runs the rules each time."""
    triggers.fire_many(session, Trigger.GRANT_REVOKED, [dict(
        member=grant.member, level=grant.level, event_key=f"grant:{grant.id}:revoked:{grant.revoked_at.isoformat()}",
        integration_id=grant.integration_id, context={"grant_ids": [grant.id], "reason": reason}) for grant in grants],
        depth=depth)
