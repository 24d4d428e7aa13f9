"""``flask owners ...``: owner accounts for the admin at /admin."""

from __future__ import annotations

import click
from flask.cli import AppGroup
from sqlalchemy import select

from admin import auth
from admin.models import Owner
from errors import CoursegateError
from extensions import db
from membership.services import normalise_email
from transactions import unit_of_work

owners_cli = AppGroup("owners", help="Owner accounts for the admin pages at /admin.")


@owners_cli.command("create")
@click.argument("email")
@click.password_option("--password", help="For scripts; prompted for (twice, hidden) when left out.")
def create_owner(email: str, password: str) -> None:
    """Create an owner who can sign in at /admin."""
    try:
        with unit_of_work() as session:
            owner = auth.create_owner(session, email, password)
    except CoursegateError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"Owner {owner.email} created. Sign in at /admin/login.")


def _owner(email: str) -> Owner:
    try:
        normalised = normalise_email(email)
    except CoursegateError as error:
        raise click.ClickException(error.message) from None
    owner = db.session.scalar(select(Owner).where(Owner.email == normalised))
    if owner is None:
        raise click.ClickException(f"No owner with the email {normalised}.")
    return owner


@owners_cli.command("set-password")
@click.argument("email")
@click.password_option("--password", help="For scripts; prompted for (twice, hidden) when left out.")
def set_password(email: str, password: str) -> None:
    """Set a new password (this also lifts every sign-in lock on the account)."""
    owner = _owner(email)
    try:
        with unit_of_work() as session:
            auth.set_password(session, owner, password)
    except CoursegateError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"Password for {owner.email} changed; every session signed in with the old one has ended.")


@owners_cli.command("sign-out")
@click.argument("email")
def sign_out_everywhere(email: str) -> None:
    """Sign an owner out on every browser (e.g. a laptop was lost); the password stays."""
    owner = _owner(email)
    with unit_of_work() as session:
        auth.end_sessions(session, owner)
    click.echo(f"{owner.email} is signed out everywhere.")


@owners_cli.command("list")
def list_owners() -> None:
    for owner in db.session.scalars(select(Owner).order_by(Owner.id)):
        click.echo(f"#{owner.id}\t{owner.email}\tlast sign-in {owner.last_login_at or 'never'}")
