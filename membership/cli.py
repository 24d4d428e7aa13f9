"""``flask api-keys ...`` and ``flask members ...``."""

from __future__ import annotations

import contextlib
import sys

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

import timeutil
from extensions import db
from membership import auth, bulk, services, transfer
from membership.models import ApiKey
from transactions import unit_of_work

api_keys_cli = AppGroup("api-keys", help="Owner API keys.")
members_cli = AppGroup("members", help="Members.")


@api_keys_cli.command("create")
@click.argument("name")
def create_key(name: str) -> None:
    """Create an API key; the key itself is printed once, as the last line."""
    with unit_of_work() as session:
        row, key = auth.create_api_key(session, name)
    click.echo(f"Created API key #{row.id} ({row.name}). Keep it safe; it will not be shown again:")
    click.echo(key)


@api_keys_cli.command("bootstrap")
def bootstrap_key() -> None:
    """Create and print a first key when none exists (used by the start script)."""
    if db.session.scalar(select(func.count(ApiKey.id)).where(ApiKey.revoked_at.is_(None))):
        click.echo("An owner API key already exists (create another with: flask --app app api-keys create NAME).")
        return
    with unit_of_work() as session:
        row, key = auth.create_api_key(session, "first key")
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
    with unit_of_work():
        row.revoked_at = timeutil.now()
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

    reader = csv.DictReader(csv_file)
    if not reader.fieldnames or column not in reader.fieldnames:
        raise click.ClickException(f"The CSV has no {column!r} column (columns: {', '.join(reader.fieldnames or [])}).")
    emails = [row[column] for row in reader if (row.get(column) or "").strip()]
    with unit_of_work() as session, click.progressbar(length=len(emails), label="Updating members",
                                                      file=sys.stderr) as bar:
        result = bulk.set_external_source(session, source, emails=emails, progress=bar.update)
    click.echo(f"{result.matched} matched, {result.changed} changed, {result.matched - result.changed} already set, "
               f"{len(result.not_found)} not found, {len(result.invalid)} invalid.")
    for email in result.not_found:
        click.echo(f"not found: {email}")
    for email in result.invalid:
        click.echo(f"invalid: {email}")
# --- import and export (membership/transfer.py) ---------------------------------------------------------

@members_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--dry-run", is_flag=True, help="Check and rehearse everything, then change nothing.")
@click.option("--strict", is_flag=True, help="Import nothing if any row is rejected.")
@click.option("--rejects", type=click.Path(dir_okay=False, writable=True),
              help="Also write the rejected rows (line, email, reason) to this CSV file.")
def import_members_command(path: str, dry_run: bool, strict: bool, rejects: str | None) -> None:
    """Import members from a CSV file with the columns email, name, levels, tags, external_source.

    Levels are slugs and tags are names, separated by ';' (or ',' or '|'). Existing members (email in any
    case) are merged: a non-empty name or external_source replaces theirs, levels they cannot open are
    granted, tags are added. One transaction: a failure, --strict with a rejected row, or --dry-run leaves
    the database as it was.
    """
    import csv as csv_module

    try:
        if path == "-":
            rows = transfer.read_csv(sys.stdin)
        else:
            with open(path, encoding="utf-8-sig", newline="") as stream:
                rows = transfer.read_csv(stream)
    except (transfer.ImportFileError, csv_module.Error, UnicodeDecodeError) as exc:
        raise click.ClickException(f"Cannot import {path}: {exc}") from None
    label = f"import {click.format_filename(path, shorten=True)}"
    try:
        with click.progressbar(length=max(len(rows), 1) * 4, label=f"Importing {len(rows)} row(s)",
                               file=sys.stderr) as bar:
            report = transfer.import_members(db.session, rows, label=label, progress=bar.update)
            bar.update(bar.length)
    except Exception:
        db.session.rollback()
        raise
    for rejected in report.rejected[:50]:
        click.echo(f"  line {rejected.line}: {rejected.email or '(no email)'}: {rejected.reason}")
    if len(report.rejected) > 50:
        click.echo(f"  ... and {len(report.rejected) - 50} more rejected row(s)")
    if rejects:
        with open(rejects, "w", newline="", encoding="utf-8") as out:
            writer = csv_module.writer(out, lineterminator="\n")
            writer.writerow(["line", "email", "reason"])
            writer.writerows([(r.line, r.email, r.reason) for r in report.rejected])
    summary = (f"{report.rows} row(s): {report.created} member(s) created, {report.updated} updated, "
               f"{report.unchanged} unchanged, {report.grants_added} grant(s) and {report.tags_added} tag(s) added, "
               f"{len(report.rejected)} rejected.")
    if strict and report.rejected:
        db.session.rollback()
        raise click.ClickException(f"{summary} Nothing was imported (--strict).")
    if dry_run:
        db.session.rollback()
        click.echo(f"Dry run, nothing changed. {summary}")
        return
    db.session.commit()
    click.echo(f"Imported. {summary}")


@members_cli.command("export")
@click.argument("path", type=click.Path(dir_okay=False, writable=True, allow_dash=True))
def export_members_command(path: str) -> None:
    """Export every member to CSV (email, name, levels they can open now, tags, external_source)."""
    total = transfer.member_count(db.session)
    if path == "-":
        stream = contextlib.nullcontext(sys.stdout)
    else:
        stream = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed by the with below
    with stream as out, click.progressbar(length=max(total, 1), label=f"Exporting {total} member(s)",
                                          file=sys.stderr) as bar:
        count = transfer.export_members(db.session, out, progress=bar.update)
    db.session.rollback()
    if path != "-":
        click.echo(f"Exported {count} member(s) to {path}.")
