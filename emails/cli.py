"""``flask emails ...``."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from emails import services

emails_cli = AppGroup("emails", help="The outbox.")


@emails_cli.command("send-pending")
def send_pending() -> None:
    """Deliver every pending email that is due (what the periodic sweep does)."""
    tried = services.sweep_pending()
    click.echo(f"Tried {tried} pending email(s).")
