"""``flask webhooks ...``: replay stored cart deliveries and run the scheduled revocations."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from errors import CoursegateError
from extensions import db
from fulfillment import services
from fulfillment.models import WebhookEvent
from fulfillment.schemas import EVENT_STATUSES
from membership import grants
from transactions import unit_of_work

webhooks_cli = AppGroup("webhooks", help="Cart webhook deliveries.")


@webhooks_cli.command("replay")
@click.argument("event_id", type=int)
def replay(event_id: int) -> None:
    """Process one stored delivery again (e.g. after adding a missing rule)."""
    row = db.session.get(WebhookEvent, event_id)
    if row is None:
        raise click.ClickException(f"No webhook event #{event_id}.")
    try:
        row = services.replay(db.session, row)
    except CoursegateError as error:
        db.session.rollback()
        raise click.ClickException(error.message) from None
    db.session.commit()
    click.echo(f"Event #{row.id}: {row.status}" + (f" ({row.last_error})" if row.last_error else ""))


@webhooks_cli.command("reprocess")
@click.option("--status", "status", type=click.Choice([s for s in EVENT_STATUSES if s not in ("processed", "duplicate")]),
              default="needs_attention", show_default=True)
@click.option("--integration", "integration_id", type=int, default=None, help="Only this integration's events.")
def reprocess(status: str, integration_id: int | None) -> None:
    """Replay every stored delivery with this status, one transaction each."""
    counts: dict[str, int] = {}
    for event_id in services.event_ids_with_status(db.session, status, integration_id=integration_id):
        row = db.session.get(WebhookEvent, event_id)
        try:
            row = services.replay(db.session, row)
        except CoursegateError as error:
            db.session.rollback()
            click.echo(f"Event #{event_id}: skipped ({error.message})")
            counts["skipped"] = counts.get("skipped", 0) + 1
            continue
        db.session.commit()
        counts[str(row.status)] = counts.get(str(row.status), 0) + 1
        click.echo(f"Event #{event_id}: {row.status}")
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing to do"
    click.echo(f"Reprocessed {sum(counts.values())} event(s): {summary}.")


@webhooks_cli.command("run-revocations")
def run_revocations() -> None:
    """Carry out revocations that are due (cancel at period end, grace period over). Run it periodically."""
    with unit_of_work() as session:
        count = grants.run_due_revocations(session)
    click.echo(f"Revoked {count} grant(s).")
