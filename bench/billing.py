"""Benchmark the billing tick: 100,000 active mandates, 10,000 of them due within the next 48 hours.

    DATABASE_URL=postgresql://user@127.0.0.1:5432/scratch .venv/bin/python bench/billing.py --reset

Seeds the database at ``DATABASE_URL`` (``--reset`` first empties the tables: never point it at data you
want to keep), then times, each in a fresh process so its peak memory is its own:

1. the tick "now": the 10,000 invoices are issued 48 h ahead, each with its email;
2. the tick 48 h later: the 10,000 invoices are charged off-session through the sandbox gateway, with
   receipts and grants extended.

Emails are delivered in-process after each commit, as on the embedded default (``--no-deliver`` leaves
them for Celery workers, as with a broker). Prints seconds and peak RSS for each tick.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOTAL = int(os.environ.get("BENCH_TOTAL", 100_000))
DUE_SOON = int(os.environ.get("BENCH_DUE", 10_000))
CHUNK = 5_000


def make_app(deliver: bool = True):
    from app import create_app

    overrides = {"COURSEGATE_MAIL_DIR": os.environ.get("BENCH_MAIL_DIR") or tempfile.mkdtemp(prefix="cg-mail-")}
    if not deliver:
        overrides["CELERY_BROKER_URL"] = "memory://localhost/"  # deliveries go to a queue nobody reads
    return create_app(overrides)


def reset_and_seed(app, now: datetime) -> None:
    from flask_migrate import upgrade
    from sqlalchemy import insert, text

    from billing.models import Mandate, PaymentMethod, Plan, SandboxCard
    from extensions import db
    from membership.models import Course, Grant, Level, Member

    with app.app_context():
        upgrade()
        tables = [t.name for t in reversed(db.metadata.sorted_tables) if t.name != "alembic_version"]
        with db.engine.begin() as conn:
            if db.engine.dialect.name == "postgresql":
                conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            else:
                for name in tables:
                    conn.execute(text(f"DELETE FROM {name}"))
        course = Course(title="Bench course", slug="bench-course", status="published")
        level = Level(name="Bench level", slug="bench-level", courses=[course])
        db.session.add_all([course, level])
        db.session.flush()
        plan = Plan(name="Bench monthly", level_id=level.id, amount=2900, currency="usd", interval_unit="month",
                    interval_count=1)
        db.session.add(plan)
        db.session.commit()
        rng = random.Random(5)
        signed = now - timedelta(days=40)
        for start in range(0, TOTAL, CHUNK):
            ids = range(start + 1, min(start + CHUNK, TOTAL) + 1)
            db.session.execute(insert(Member), [
                {"id": i, "email": f"bench{i}@example.com", "name": f"Bench {i}", "login_nonce": "",
                 "created_at": signed, "updated_at": signed} for i in ids])
            db.session.execute(insert(SandboxCard), [
                {"id": i, "token": f"sbx_pm_bench{i}", "behaviour": "success", "brand": "visa", "last4": "4242",
                 "exp_month": 12, "exp_year": 2034, "created_at": signed} for i in ids])
            db.session.execute(insert(PaymentMethod), [
                {"id": i, "member_id": i, "gateway": "sandbox", "token": f"sbx_pm_bench{i}", "brand": "visa",
                 "last4": "4242", "exp_month": 12, "exp_year": 2034, "created_at": signed} for i in ids])
            rows = []
            for i in ids:
                if i <= DUE_SOON:  # due within the next 48 hours
                    period_end = now + timedelta(seconds=rng.randrange(60, 48 * 3600 - 60))
                else:  # due later in the month: nothing to do for them in either tick
                    period_end = now + timedelta(days=5) + timedelta(seconds=rng.randrange(0, 25 * 86400))
                rows.append({"id": i, "member_id": i, "plan_id": plan.id, "payment_method_id": i,
                             "gateway": "sandbox", "amount": 2900, "currency": "usd", "interval_unit": "month",
                             "interval_count": 1, "authorisation_text": "I authorise the bench.",
                             "status": "active", "created_at": signed, "signed_at": signed,
                             "current_period_end": period_end, "updated_at": signed})
            db.session.execute(insert(Mandate), rows)
            db.session.execute(insert(Grant), [
                {"id": r["id"], "member_id": r["member_id"], "level_id": level.id, "status": "active",
                 "starts_at": signed, "ends_at": r["current_period_end"], "source_kind": "subscription",
                 "subscription_ref": f"mandate:{r['id']}", "mandate_id": r["id"], "created_at": signed,
                 "updated_at": signed} for r in rows])
            db.session.commit()
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                for table in ("members", "billing_sandbox_cards", "billing_payment_methods", "billing_mandates",
                              "grants"):
                    conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                      f"(SELECT max(id) FROM {table}))"))
                conn.execute(text("ANALYZE"))


def run_tick(at: datetime, deliver: bool) -> None:
    """In a child process: one tick at ``at``; prints a result line for the parent."""
    import timeutil
    from billing import lifecycle
    from extensions import db

    app = make_app(deliver)
    with app.app_context(), timeutil.frozen(at):
        started = time.perf_counter()
        report = lifecycle.tick(db.session)
        seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"RESULT {seconds:.2f} {peak_mb:.0f} {report.summary()}")


def child(at: datetime, deliver: bool) -> tuple[float, float, str]:
    command = [sys.executable, __file__, "--tick-at", at.isoformat()] + ([] if deliver else ["--no-deliver"])
    output = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT).stdout
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    _, seconds, peak, summary = line.split(" ", 3)
    return float(seconds), float(peak), summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reset", action="store_true", help="empty the database's tables and seed it")
    parser.add_argument("--no-deliver", action="store_true", help="leave emails queued for workers")
    parser.add_argument("--tick-at", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.tick_at:
        run_tick(datetime.fromisoformat(args.tick_at), not args.no_deliver)
        return
    if not os.environ.get("DATABASE_URL"):
        parser.error("set DATABASE_URL to a scratch database")
    if not args.reset:
        parser.error("--reset is required: the benchmark empties and seeds the database")
    now = datetime.now(UTC).replace(microsecond=0)
    started = time.perf_counter()
    reset_and_seed(make_app(), now)
    print(f"seeded {TOTAL:,} active mandates ({DUE_SOON:,} due within 48 h) in "
          f"{time.perf_counter() - started:.1f} s")
    deliver = not args.no_deliver
    for label, at in (("issue tick (now)", now), ("charge tick (+48 h)", now + timedelta(hours=48))):
        seconds, peak, summary = child(at, deliver)
        print(f"{label}: {seconds:.2f} s, peak memory {peak:.0f} MB  [{summary}]")


if __name__ == "__main__":
    main()
