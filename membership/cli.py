"""``flask api-keys ...`` and ``flask members ...``."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

import timeutil
from extensions import db
from membership import auth, services
from membership.models import ApiKey

api_keys_cli = AppGroup("api-keys", help="Owner API keys.")
members_cli = AppGroup("members", help="Members.")


@api_keys_cli.command("create")
@click.argument("name")
def create_key(name: str) -> None:
    """Create an API key; the key itself is printed once, as the last line."""
    row, key = auth.create_api_key(db.session, name)
    db.session.commit()
    click.echo(f"Created API key #{row.id} ({row.name}). Keep it safe; it will not be shown again:")
    click.echo(key)


@api_keys_cli.command("bootstrap")
def bootstrap_key() -> None:
    """Create and print a first key when none exists (used by the start script)."""
    if db.session.scalar(select(func.count(ApiKey.id)).where(ApiKey.revoked_at.is_(None))):
        click.echo("An owner API key already exists (create another with: flask --app app api-keys create NAME).")
        return
    row, key = auth.create_api_key(db.session, "first key")
    db.session.commit()
    click.echo("Your owner API key (shown once; use it as 'Authorization: Bearer <key>'):")
    click.echo(key)


@api_keys_cli.command("list")
def list_keys() -> None:
    for row in db.session.scalars(select(ApiKey).order_by(ApiKey.id)):
        state = "revoked" if row.revoked_at else "active"
        click.echo(f"#{row.id}\t{row.prefix}…\t{row.name}\t{state}\tlast used {row.last_used_at or 'never'}")


@api_keys_cli.command("revoke")
@click.argument("key_id", type=int)
def revoke_key(key_id: int) -> None:
    row = db.session.get(ApiKey, key_id)
    if row is None:
        raise click.ClickException(f"No API key #{key_id}.")
    row.revoked_at = timeutil.now()
    db.session.commit()
    click.echo(f"Revoked API key #{key_id}.")


@members_cli.command("show")
@click.argument("email")
def show_member(email: str) -> None:
    """Print a member's grants."""
    member = services.member_by_email(db.session, email)
    if member is None:
        raise click.ClickException(f"No member with the email {email}.")
    click.echo(f"#{member.id} {member.email} {member.name}")
    for grant in db.session.scalars(member.grants.select()):
        click.echo(f"  grant #{grant.id} {grant.level.slug} {grant.status} ends {grant.ends_at or 'never'}")


@members_cli.command("login-link")
@click.argument("email")
@click.option("--days", is_flag=True, help="A welcome-style link valid for days instead of one hour.")
def login_link(email: str, days: bool) -> None:
    """Print a fresh login link for a member (to help someone who cannot find their email)."""
    member = services.member_by_email(db.session, email)
    if member is None:
        raise click.ClickException(f"No member with the email {email}.")
    click.echo(services.login_url(member, purpose="welcome" if days else "login"))


@members_cli.command("set-external-source")
@click.argument("csv_file", type=click.File("r", encoding="utf-8-sig"))
@click.option("--source", required=True, help="The value to set, e.g. infusionsoft; an empty string clears it.")
@click.option("--column", default="email", show_default=True, help="The CSV column that holds the emails.")
def set_external_source(csv_file, source: str, column: str) -> None:
    """Set external_source for the members whose emails are listed in CSV_FILE (one transaction)."""
    import csv
    import sys

    from membership import bulk

    reader = csv.DictReader(csv_file)
    if not reader.fieldnames or column not in reader.fieldnames:
        raise click.ClickException(f"The CSV has no {column!r} column (columns: {', '.join(reader.fieldnames or [])}).")
    emails = [row[column] for row in reader if (row.get(column) or "").strip()]
    with click.progressbar(length=len(emails), label="Updating members", file=sys.stderr) as bar:
        result = bulk.set_external_source(db.session, source, emails=emails, progress=bar.update)
    db.session.commit()
    click.echo(f"{result.matched} matched, {result.changed} changed, {result.matched - result.changed} already set, "
               f"{len(result.not_found)} not found, {len(result.invalid)} invalid.")
    for email in result.not_found:
        click.echo(f"not found: {email}")
    for email in result.invalid:
        click.echo(f"invalid: {email}")
