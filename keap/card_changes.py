"""Recording a card change and telling the member: shared by Keap's card update and our own billing's.

Only PCI-safe data passes through here: provider payment-method ids, brand, last 4 and expiry.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

import timeutil
from emails import services as email_services
from keap.models import CardChange, CardChangedBy, CardChangeSource
from membership.models import Member


def record_card_change(session: Session, member: Member, *, source: str, subscription_refs: list[str],
                       new_payment_method_ref: str, new_brand: str | None, new_last4: str | None,
                       new_exp_month: int | None = None, new_exp_year: int | None = None,
                       old_payment_method_ref: str | None = None, old_brand: str | None = None,
                       old_last4: str | None = None, account_ref: str | None = None,
                       changed_by: str = CardChangedBy.MEMBER, changed_by_ref: str | None = None,
                       subscription_names: list[str] | None = None) -> CardChange:
    """Store the change and queue the ``card_updated`` confirmation email (sent after commit)."""
    change = CardChange(
        member_id=member.id, source=CardChangeSource(source).value,
        subscription_refs=[str(r) for r in subscription_refs],
        account_ref=account_ref, old_payment_method_ref=old_payment_method_ref,
        new_payment_method_ref=new_payment_method_ref, old_brand=old_brand, old_last4=old_last4,
        new_brand=new_brand, new_last4=new_last4, new_exp_month=new_exp_month, new_exp_year=new_exp_year,
        changed_by=CardChangedBy(changed_by).value, changed_by_ref=changed_by_ref, changed_at=timeutil.now(),
    )
    session.add(change)
    session.flush()
    expiry = f"{new_exp_month:02d}/{new_exp_year}" if new_exp_month and new_exp_year else ""
    email_services.enqueue(
        session, "card_updated", member.email,
        {"member_name": member.name or member.email, "brand": new_brand or "card", "last4": new_last4 or "",
         "expiry": expiry, "old_last4": old_last4 or "",
         "subscriptions": subscription_names or [str(r) for r in subscription_refs],
         "changed_at": change.changed_at.strftime("%d %B %Y, %H:%M UTC")},
        dedupe_key=f"card_updated:{change.id}", member_id=member.id,
    )
    return change
