"""The domain events one room announces and others hear (blinker signals; Flask already depends on blinker).

A sender never knows its listeners: fulfillment and billing announce what happened, and automations, Keap and
emails decide what follows. Every signal is sent with the SQLAlchemy session as its sender, inside the
transaction that made the change, so a listener's writes commit or roll back with it. Listeners connect at
import time of their own ``listeners`` module (imported by ``create_app``); they must flush and never commit.

Keyword arguments, by signal:

- ``grants_opened``: ``grant_ids``, ``member_ids``.
- ``grants_changed``: ``grant_ids``, ``change`` (``past_due``, ``renewed``, ``restored``, ``paused``, ``resumed``,
  ``revocation_scheduled``, ``extended``, ``reopened``).
- ``grants_revoked``: ``grants`` (the revoked rows), ``reason``, ``depth`` (how deep in a chain of rules).
- ``order_line_refunded``, ``subscription_cancelled``, ``subscription_paused``, ``subscription_resumed``,
  ``cancel_scheduled``, ``payment_failed``, ``payment_recovered``, ``card_updated``, ``member_untagged``: what
  ``automations.triggers.fire`` takes: ``member``, ``event_key``, and optionally ``level``, ``product_id``,
  ``integration_id``, ``tag``, ``context``, ``depth``.
- ``order_lines_granted``, ``members_tagged``: many of those at once (a batch of orders, a batch of taggings):
  ``events``, a list of dicts with the keys above but ``depth``, and ``depth`` beside it. Their listeners work
  on the whole list with one statement per step (``automations.triggers.fire_many``).
- ``member_email_changed``: ``member``, ``old_email``.
"""

from __future__ import annotations

from blinker import Namespace

_domain = Namespace()

# membership: a grant's life (membership.grants sends these, and only it)
grants_opened = _domain.signal("grants-opened")
grants_changed = _domain.signal("grants-changed")
grants_revoked = _domain.signal("grants-revoked")
# membership: members and their tags
member_email_changed = _domain.signal("member-email-changed")
members_tagged = _domain.signal("members-tagged")
member_untagged = _domain.signal("member-untagged")
# fulfillment: what a cart told us
order_lines_granted = _domain.signal("order-lines-granted")
order_line_refunded = _domain.signal("order-line-refunded")
subscription_cancelled = _domain.signal("subscription-cancelled")
# fulfillment (a cart's subscription) and billing (our own)
subscription_paused = _domain.signal("subscription_paused")
subscription_resumed = _domain.signal("subscription_resumed")
cancel_scheduled = _domain.signal("cancel_scheduled")
payment_failed = _domain.signal("payment-failed")
payment_recovered = _domain.signal("payment-recovered")
# billing: a member's card
card_updated = _domain.signal("card-updated")
