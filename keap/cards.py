"""Card updates for Keap subscriptions, through Keap's hosted payment component.

1. :func:`begin_capture` notes the contact's payment methods on the subscription's merchant account, and
   :func:`start_card_capture` asks Keap for a payment-component session
   (``POST /rest/v2/paymentMethodConfigs``); the page renders ``<keap-payment-method data-key=...>`` from
   payments.keap.page. The card goes from the member's browser to Keap: no card number ever passes through
   us, and the session key is never stored.
2. :func:`apply_new_card` finds the contact's newest payment method on the same merchant account as the
   subscription (Keap's tokens are tied to one processor) that was not there when the form opened, and
   PATCHes (``update_mask=payment_method_id``) every active subscription of the contact that used the old
   payment method on that merchant account, and only those. The change is recorded and the member emailed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from keap import subscriptions
from keap.card_changes import record_card_change
from keap.client import KeapClient, get_client
from keap.errors import KeapError, KeapUnavailable, NoNewCard
from keap.models import CardChange, CardChangedBy
from keap.subscriptions import Card, card_from_payment_method
from membership.models import Member

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CaptureContext:
    """What the confirm step needs to know about the card being replaced (ids only; kept in the signed
    session cookie between the two requests)."""

    subscription_id: str
    contact_id: str
    old_payment_method_id: str | None
    merchant_account_id: str | None
    # The contact's payment methods on that account when the form opened: the new card is one not among them.
    known_payment_method_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return {**self.__dict__, "known_payment_method_ids": list(self.known_payment_method_ids)}

    @classmethod
    def from_dict(cls, data: dict) -> CaptureContext:
        return cls(subscription_id=str(data["subscription_id"]), contact_id=str(data["contact_id"]),
                   old_payment_method_id=data.get("old_payment_method_id"),
                   merchant_account_id=data.get("merchant_account_id"),
                   known_payment_method_ids=tuple(data.get("known_payment_method_ids") or ()))


@dataclass
class CardUpdate:
    new_card: Card
    updated: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    change: CardChange | None = None


def start_card_capture(contact_id: str) -> str:
    """A session key for Keap's payment component (valid about an hour). Put it in the page, nowhere else."""
    return get_client().create_payment_method_config(contact_id)


def begin_capture(row: subscriptions.SubscriptionRow) -> tuple[str, CaptureContext]:
    """Note the contact's current payment methods on the subscription's merchant account, then open a
    component session. Returns the session key (for the page only) and what the confirm step needs."""
    client = get_client()
    known = tuple(str(m["payment_method_id"]) for m in client.list_payment_methods(
        row.contact_id, merchant_account_id=row.merchant_account_id) if m.get("payment_method_id"))
    session_key = start_card_capture(row.contact_id)
    return session_key, CaptureContext(
        subscription_id=row.subscription_id, contact_id=row.contact_id,
        old_payment_method_id=row.payment_method_id, merchant_account_id=row.merchant_account_id,
        known_payment_method_ids=known)


def _newest(methods: list[dict]) -> dict | None:
    dated = [m for m in methods if m.get("payment_method_id")]
    if not dated:
        return None
    # ISO-8601 timestamps sort as strings; Keap already orders by created_time desc, ties keep its order.
    return max(reversed(dated), key=lambda m: str(m.get("created_time") or ""))


def _names_for(member: Member, client: KeapClient, subs: list[dict]) -> list[str]:
    """Product names for the confirmation email: from the member's cached view, else Keap, else the id."""
    cached = subscriptions.cached(member)
    known = {row.subscription_id: row.product_name for row in (cached.rows if cached else ())}
    names: list[str] = []
    products: dict[str, str] = {}
    for sub in subs:
        sub_id = str(sub["id"])
        if sub_id in known:
            names.append(known[sub_id])
            continue
        try:
            names.append(subscriptions.product_name(client, subscriptions.text_or_none(sub.get("product_id")),
                                                    products))
        except KeapError:
            names.append(f"Subscription {sub_id}")
    return names


def apply_new_card(session: Session, member: Member, capture: CaptureContext, *,
                   changed_by: str = CardChangedBy.MEMBER, changed_by_ref: str | None = None) -> CardUpdate:
    client = get_client()
    merchant = capture.merchant_account_id
    old_id = capture.old_payment_method_id
    methods = client.list_payment_methods(capture.contact_id, merchant_account_id=merchant)
    on_account = [m for m in methods
                  if merchant is None or str(m.get("merchant_account_id") or "") == merchant]
    known = set(capture.known_payment_method_ids) | {old_id}
    usable = [m for m in on_account if str(m.get("status") or "").upper() != "EXPIRED"
              and str(m.get("payment_method_id")) not in known]
    newest = _newest(usable)
    new_card = card_from_payment_method(newest) if newest else None
    if new_card is None:
        raise NoNewCard()
    old_card = next((card_from_payment_method(m) for m in methods
                     if str(m.get("payment_method_id")) == old_id), None)

    active = [s for s in client.list_active_subscriptions(capture.contact_id)
              if s.get("active", True) is not False]
    if old_id is None:  # a subscription with no card yet: only the one the member chose
        targets = [s for s in active if str(s.get("id")) == capture.subscription_id]
    else:
        targets = [s for s in active if str(s.get("payment_method_id") or "") == old_id
                   and (merchant is None or str(s.get("merchant_account_id") or "") == merchant)]
    result = CardUpdate(new_card=new_card)
    for sub in targets:
        sub_id = str(sub["id"])
        try:
            client.update_subscription_payment_method(sub_id, new_card.payment_method_id)
        except KeapError as exc:
            logger.warning("keap subscription %s could not be moved to the new card (%s)", sub_id, exc.code)
            result.failed.append(sub_id)
            continue
        result.updated.append(sub_id)
    names = _names_for(member, client, [s for s in targets if str(s["id"]) in result.updated])
    subscriptions.forget(member.id)
    if result.failed and not result.updated:
        raise KeapUnavailable("Keap did not accept the new card for your subscriptions; "
                              "please try again shortly.")
    if result.updated:
        result.change = record_card_change(
            session, member, source="keap", subscription_refs=result.updated, account_ref=capture.contact_id,
            old_payment_method_ref=old_id, old_brand=old_card.brand if old_card else None,
            old_last4=old_card.last4 if old_card else None, new_payment_method_ref=new_card.payment_method_id,
            new_brand=new_card.brand, new_last4=new_card.last4, new_exp_month=new_card.exp_month,
            new_exp_year=new_card.exp_year, changed_by=changed_by, changed_by_ref=changed_by_ref,
            subscription_names=names,
        )
    logger.info("keap card update for member %s: %s subscription(s) moved, %s failed", member.id,
                len(result.updated), len(result.failed))
    return result
