"""``flask emails ...``."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from emails import services
from extensions import db

emails_cli = AppGroup("emails", help="The outbox.")


@emails_cli.command("send-pending")
def send_pending() -> None:
    """Deliver every pending email that is due (what the periodic sweep does)."""
    tried = services.sweep_pending()
    click.echo(f"Tried {tried} pending email(s).")


@emails_cli.command("scrub-links")
def scrub_links() -> None:
    """Once after upgrading: emails stored before links were made at send time give up their login and invoice
    links (a pending one is sent with a fresh link; a resend works as before)."""
    changed = services.scrub_stored_links(db.session)
    click.echo(f"{changed} email(s) no longer hold a working link.")
