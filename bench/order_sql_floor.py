"""What a new buyer's order costs in SQL alone: the order path's statements sent by raw psycopg, no HTTP, no ORM.

    DATABASE_URL=postgresql://user@127.0.0.1:5432/dbname .venv/bin/python bench/order_sql_floor.py [-n 4000] [-c 16]
        [--batch K]

A floor for ``bench/webhooks.py``: C client threads each hold a connection and send, per new buyer, the same
statements the receiver sends today (``bench/webhook_costs.py --list``: store the delivery under its advisory
lock, refunds recorded early, rules, member lookup and insert, grant, automations settings and events, tag,
email override, the welcome email, the delivery's status) in one transaction. With ``--batch K`` each
transaction carries K orders, every statement covering all K at once (multi-row inserts, ``= ANY`` lookups):
what amortising deliveries across one transaction would save. Prints orders/s and the CPU each order cost
PostgreSQL's backends and this client, read from /proc (PostgreSQL must run on this machine).

It writes rows of its own (a fresh integration, level and tag, tagged with a run id) into DATABASE_URL.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from webhooks import cpu_seconds

BODY = "x" * 1800  # a ThriveCart form delivery is ~1.8 kB
TEXT, HTML = "t" * 900, "h" * 2500  # the welcome email's parts


def setup(run: str) -> tuple[int, int, str]:
    """Migrate, then add an integration, a level and a tag of this run's own. Returns their keys."""
    os.environ.setdefault("COURSEGATE_LOG_LEVEL", "WARNING")
    os.environ.setdefault("CELERY_BROKER_URL", "memory://localhost/")
    os.environ.setdefault("SECRET_KEY", "bench-floor")
    from flask_migrate import upgrade

    from app import create_app
    from extensions import db
    from fulfillment.models import Integration
    from membership.models import Level
    from membership.tags import Tag

    app = create_app()
    with app.app_context():
        upgrade()
        level = Level(name=f"Floor {run}", slug=f"floor-{run}")
        integration = Integration(kind="thrivecart", name=f"floor {run}", secret=f"FLOOR{run}")
        tag = Tag(name=f"floor-{run}")
        db.session.add_all([level, integration, tag])
        db.session.commit()
        return integration.id, level.id, tag.name


def one_order(cur, integration_id: int, level_id: int, tag: str, order: str, email: str) -> None:
    cur.execute("SELECT id, kind, secret, accept_test_orders FROM integrations WHERE id = %s",
                (integration_id,)).fetchall()
    event_id = cur.execute(
        "WITH held AS (SELECT pg_advisory_xact_lock(hashtext(%s::varchar))) INSERT INTO webhook_events "
        "(integration_id, provider, event_type, dedupe_key, status, test_mode, email, order_ref, customer_ref, "
        "content_type, body, headers, attempts, received_at) SELECT %s, 'thrivecart', 'order.success', %s, "
        "'received', false, %s, %s, 'c', 'application/x-www-form-urlencoded', %s, %s, 0, now() FROM held "
        "ON CONFLICT DO NOTHING RETURNING id",
        (f"order:{order}", integration_id, f"key:{order}", email, order, BODY, json.dumps({"Host": "x"}))
    ).fetchone()[0]
    cur.execute("SELECT id, kind, line_ref FROM order_adjustments WHERE integration_id = %s AND order_ref = %s",
                (integration_id, order)).fetchall()
    cur.execute("SELECT id, item_type, product_id FROM fulfillment_rules WHERE integration_id = %s",
                (integration_id,)).fetchall()
    cur.execute("SELECT id FROM members WHERE email = %s", (email,)).fetchall()
    member_id = cur.execute(
        "INSERT INTO members (email, name, login_nonce, created_at, updated_at) "
        "VALUES (%s, 'Buyer', 'nonce', now(), now()) RETURNING id", (email,)).fetchone()[0]
    cur.execute("INSERT INTO grants (member_id, level_id, status, starts_at, source_kind, integration_id, "
                "order_ref, line_ref, created_at, updated_at) VALUES (%s, %s, 'active', now(), 'order', %s, %s, "
                "'product-12', now(), now()) ON CONFLICT DO NOTHING RETURNING id",
                (member_id, level_id, integration_id, order)).fetchall()
    cur.execute("SELECT key FROM automation_settings WHERE key = %s", ("tags",)).fetchall()
    for trigger in ("order_completed", "tag_added"):
        cur.execute("INSERT INTO automation_events (trigger, event_key, member_id, depth, context, created_at) "
                    "VALUES (%s, %s, %s, 0, '{}', now()) ON CONFLICT DO NOTHING RETURNING id",
                    (trigger, f"{trigger}:{order}", member_id)).fetchall()
        if trigger == "order_completed":
            cur.execute("INSERT INTO member_tags (member_id, tag_id, applied_at, applied_by) SELECT %s, tags.id, "
                        "now(), 'automation' FROM tags WHERE name = %s ON CONFLICT DO NOTHING RETURNING tag_id",
                        (member_id, tag)).fetchall()
    cur.execute("SELECT id FROM email_template_overrides WHERE template = 'welcome'").fetchall()
    cur.execute("INSERT INTO outbound_emails (recipient, template, subject, text_body, html_body, status, attempts, "
                "dedupe_key, member_id, next_attempt_at, created_at) VALUES (%s, 'welcome', 'Welcome', %s, %s, "
                "'pending', 0, %s, %s, now(), now()) ON CONFLICT DO NOTHING RETURNING id",
                (email, TEXT, HTML, f"welcome:member:{member_id}", member_id)).fetchall()
    cur.execute("UPDATE webhook_events SET status = 'processed', attempts = 1, processed_at = now() WHERE id = %s",
                (event_id,))


def batch_of_orders(cur, integration_id: int, level_id: int, tag: str, orders: list[str],
                    emails: list[str]) -> None:
    """The same work for K orders, each statement covering all of them."""
    cur.execute("SELECT id, kind, secret, accept_test_orders FROM integrations WHERE id = %s",
                (integration_id,)).fetchall()
    cur.execute("SELECT pg_advisory_xact_lock(hashtext(k)) FROM unnest(%s::varchar[]) AS k",
                ([f"order:{o}" for o in orders],)).fetchall()
    event_ids = [r[0] for r in cur.execute(
        "INSERT INTO webhook_events (integration_id, provider, event_type, dedupe_key, status, test_mode, email, "
        "order_ref, customer_ref, content_type, body, headers, attempts, received_at) SELECT %s, 'thrivecart', "
        "'order.success', 'key:' || o, 'received', false, e, o, 'c', 'application/x-www-form-urlencoded', %s, "
        "%s, 0, now() FROM unnest(%s::varchar[], %s::varchar[]) AS u(o, e) ON CONFLICT DO NOTHING RETURNING id",
        (integration_id, BODY, json.dumps({"Host": "x"}), orders, emails)).fetchall()]
    cur.execute("SELECT id, kind, line_ref FROM order_adjustments WHERE integration_id = %s AND order_ref = ANY(%s)",
                (integration_id, orders)).fetchall()
    cur.execute("SELECT id, item_type, product_id FROM fulfillment_rules WHERE integration_id = %s",
                (integration_id,)).fetchall()
    cur.execute("SELECT id FROM members WHERE email = ANY(%s)", (emails,)).fetchall()
    member_ids = [r[0] for r in cur.execute(
        "INSERT INTO members (email, name, login_nonce, created_at, updated_at) SELECT e, 'Buyer', 'nonce', now(), "
        "now() FROM unnest(%s::varchar[]) AS e RETURNING id", (emails,)).fetchall()]
    cur.execute("INSERT INTO grants (member_id, level_id, status, starts_at, source_kind, integration_id, order_ref, "
                "line_ref, created_at, updated_at) SELECT m, %s, 'active', now(), 'order', %s, o, 'product-12', "
                "now(), now() FROM unnest(%s::int[], %s::varchar[]) AS u(m, o) ON CONFLICT DO NOTHING RETURNING id",
                (level_id, integration_id, member_ids, orders)).fetchall()
    cur.execute("SELECT key FROM automation_settings WHERE key = %s", ("tags",)).fetchall()
    for trigger in ("order_completed", "tag_added"):
        cur.execute("INSERT INTO automation_events (trigger, event_key, member_id, depth, context, created_at) "
                    "SELECT %s, %s || o, m, 0, '{}', now() FROM unnest(%s::int[], %s::varchar[]) AS u(m, o) "
                    "ON CONFLICT DO NOTHING RETURNING id", (trigger, f"{trigger}:", member_ids, orders)).fetchall()
        if trigger == "order_completed":
            cur.execute("INSERT INTO member_tags (member_id, tag_id, applied_at, applied_by) SELECT m, tags.id, "
                        "now(), 'automation' FROM unnest(%s::int[]) AS m, tags WHERE tags.name = %s "
                        "ON CONFLICT DO NOTHING RETURNING tag_id", (member_ids, tag)).fetchall()
    cur.execute("SELECT id FROM email_template_overrides WHERE template = 'welcome'").fetchall()
    cur.execute("INSERT INTO outbound_emails (recipient, template, subject, text_body, html_body, status, attempts, "
                "dedupe_key, member_id, next_attempt_at, created_at) SELECT e, 'welcome', 'Welcome', %s, %s, "
                "'pending', 0, 'welcome:member:' || m, m, now(), now() FROM unnest(%s::varchar[], %s::int[]) "
                "AS u(e, m) ON CONFLICT DO NOTHING RETURNING id", (TEXT, HTML, emails, member_ids)).fetchall()
    cur.execute("UPDATE webhook_events SET status = 'processed', attempts = 1, processed_at = now() "
                "WHERE id = ANY(%s)", (event_ids,))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=4000, help="new buyers' orders (default 4000)")
    parser.add_argument("-c", type=int, default=16, help="client threads, one connection each (default 16)")
    parser.add_argument("--batch", type=int, default=1, help="orders per transaction (default 1: as today)")
    args = parser.parse_args()
    database_url = os.environ.get("DATABASE_URL", "")
    if not database_url.startswith("postgresql"):
        print("Set DATABASE_URL to a local PostgreSQL database.", file=sys.stderr)
        return 2
    import psycopg

    run = uuid.uuid4().hex[:8]
    integration_id, level_id, tag = setup(run)
    dsn = database_url.replace("postgresql+psycopg://", "postgresql://")
    started, finished = threading.Barrier(args.c + 1), threading.Barrier(args.c + 1)
    leave = threading.Event()
    backends: set[int] = set()

    def client(k: int) -> None:
        with psycopg.connect(dsn, prepare_threshold=0) as conn:  # prepared at once, as the app's are when warm
            backends.add(conn.info.backend_pid)
            cur = conn.cursor()
            mine = list(range(k * args.batch, args.n, args.c * args.batch))
            started.wait()
            for first in mine:
                numbers = range(first, min(first + args.batch, args.n))
                orders = [f"{run}-{i}" for i in numbers]
                emails = [f"buyer-{i}@{run}.floor.example" for i in numbers]
                with conn.transaction():
                    if args.batch == 1:
                        one_order(cur, integration_id, level_id, tag, orders[0], emails[0])
                    else:
                        batch_of_orders(cur, integration_id, level_id, tag, orders, emails)
            finished.wait()
            leave.wait()  # a backend's CPU is readable only while it lives

    threads = [threading.Thread(target=client, args=(k,)) for k in range(args.c)]
    for thread in threads:
        thread.start()
    started.wait()
    db_before, me_before, t0 = cpu_seconds(backends), time.process_time(), time.perf_counter()
    finished.wait()
    elapsed, me = time.perf_counter() - t0, time.process_time() - me_before
    db_after = cpu_seconds(backends)
    leave.set()
    for thread in threads:
        thread.join()
    db = sum(db_after[p] - db_before.get(p, 0) for p in db_after)
    per_db, per_client = db / args.n * 1000, me / args.n * 1000
    print(f"order SQL floor: N={args.n} new buyers, C={args.c}, {args.batch} order(s) per transaction, "
          f"raw psycopg, no HTTP")
    print(f"  orders/s                       {args.n / elapsed:8.0f}")
    print(f"  PostgreSQL CPU per order       {per_db:8.2f} ms")
    print(f"  client CPU per order           {per_client:8.2f} ms")
    print(f"  orders/s the 2 cores allow     {2000 / (per_db + per_client):8.0f}  (2 s of CPU / CPU per order)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
