"""``flask automations ...``."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from automations import rules, webhooks
from membership import grants
from transactions import unit_of_work

automations_cli = AppGroup("automations", help="Automation rules, scheduled revocations, outgoing webhooks.")


@automations_cli.command("install-defaults")
def install_defaults() -> None:
    """Create the default failed-payment rules that are missing (safe to run again)."""
    with unit_of_work() as session:
        created = rules.install_defaults(session)
    for rule in created:
        click.echo(f"Created automation #{rule.id}: {rule.name}")
    click.echo(f"{len(created)} default rule(s) created; {len(rules.DEFAULT_RULES) - len(created)} already there.")


@automations_cli.command("run-due")
def run_due() -> None:
    """Carry out scheduled revocations whose time has come (what the periodic job does)."""
    with unit_of_work() as session:
        count = grants.run_due_revocations(session)
    click.echo(f"Revoked {count} grant(s) on schedule.")


@automations_cli.command("sweep-webhooks")
def sweep_webhooks() -> None:
    """Send every outgoing webhook delivery that is due (what the periodic job does)."""
    tried = webhooks.sweep_due()
    click.echo(f"Tried {tried} webhook delivery(ies).")
