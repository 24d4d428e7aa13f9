"""``flask billing ...``: the tick, for cron or by hand."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from billing import lifecycle
from extensions import db

billing_cli = AppGroup("billing", help="Subscriptions: plans, mandates and invoices.")


@billing_cli.command("tick")
def tick_command() -> None:
    """One pass: expire unsigned mandates, issue invoices, charge and retry, mark unpaid. Safe to rerun."""
    report = lifecycle.tick(db.session)
    click.echo(f"Billing tick: {report.summary()}.")
