"""Our own subscriptions: plans, signed mandates, invoices ahead of the charge, renewals and recovery.

``init_app`` sets the billing defaults; ``billing.account_links.init_app`` plugs billing into ``/account``; the
blueprints and the CLI group are registered by ``app.py`` like every other domain's.
"""

from __future__ import annotations

from flask import Flask

DEFAULTS = {
    "BILLING_GATEWAY": "sandbox",  # or "stripe"
    "BILLING_INVOICE_LEAD_HOURS": 48,
    "BILLING_RETRY_DAYS": "1,3,5",  # automatic retries, in days after the due date
    "BILLING_GRACE_DAYS": 7,  # access kept while past due
    "BILLING_PENDING_HOURS": 24,  # an unsigned mandate expires after this
    "BILLING_BATCH_SIZE": 500,
    "BILLING_LINK_MAX_AGE": 60 * 24 * 3600,  # emailed invoice links
    "STRIPE_SECRET_KEY": None,
}


def init_app(app: Flask) -> None:
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)
