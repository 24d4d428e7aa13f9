"""What billing tells the member pages: the account section and where to settle a past-due subscription.

``init_app`` plugs them, and the link to the billing page, into ``/account`` (``membership.account``'s
registries for this app).
"""

from __future__ import annotations

from flask import Flask, render_template
from markupsafe import Markup
from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from billing import billing_page, links, queries
from billing.models import Invoice, InvoiceStatus, Mandate, MandateStatus, PaymentStatus
from membership import account
from membership.models import Grant, GrantSourceKind, Member


def account_section(session: Session, member: Member) -> Markup | None:
    """The "Subscriptions" section of /account, or None for a member who never subscribed."""
    subscribed = session.scalar(select(exists().where(Mandate.member_id == member.id,
                                                      Mandate.status != MandateStatus.EXPIRED)))
    if not subscribed:
        return None
    return Markup(render_template("billing/_account_section.html", member=member))


def card_update_url(session: Session, grant: Grant) -> str | None:
    """For a past-due subscription grant: the page of the invoice to pay (retry, new card or authenticate)."""
    if grant.source_kind != GrantSourceKind.SUBSCRIPTION or grant.mandate_id is None:
        return None
    invoice_id = session.scalar(
        select(Invoice.id).where(Invoice.mandate_id == grant.mandate_id, Invoice.status == InvoiceStatus.OPEN,
                                 Invoice.payment_status.in_([PaymentStatus.FAILED, PaymentStatus.REQUIRES_ACTION]))
        .order_by(Invoice.due_at.desc()).limit(1)
    )
    return links.invoice_url(invoice_id, grant.member_id) if invoice_id is not None else None


def init_app(app: Flask) -> None:
    account.register_card_update_url(app, "billing", card_update_url)
    account.register_account_section(app, "billing", account_section)
    account.register_account_section(app, "billing_page", billing_page.account_link)
    # templates/billing/_account_section.html, included in the section above, calls this.
    app.jinja_env.globals["billing_account_summary"] = queries.account_summary_for_template
