"""What one ThriveCart delivery costs, measured in-process: SQL statements and CPU (load-independent figures).

    DATABASE_URL=postgresql://user@127.0.0.1:5432/dbname .venv/bin/python bench/webhook_costs.py [-n 200] [--list] [--profile FILE]

Builds the app against DATABASE_URL (migrated), adds a fresh integration as bench/webhooks.py does, then sends
deliveries one at a time through the Flask test client and reports, per kind of delivery (new buyer, returning
buyer, redelivery, and ``GET /healthz`` as the floor), and last new buyers 8 at a time from 8 threads, which the
group-commit receiver fulfils in batches (their CPU is the whole process's):

- SQL statements sent by the app (cursor executes on its engine and on its autocommit twin, SAVEPOINT/RELEASE included), plus BEGIN/COMMIT/ROLLBACK and
  the pool's pre-ping ``SELECT 1``, counted separately;
- CPU of the web process per request (thread CPU time, so other processes on the machine do not count);
- CPU of the PostgreSQL backend serving the connection (its /proc utime+stime), when the server is local.

``--list`` prints the statements of one new buyer's single-item order, in order.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from webhooks import cpu_seconds, delivery


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200, help="deliveries of each kind (default 200)")
    parser.add_argument("--list", action="store_true", help="print one new buyer's statements")
    parser.add_argument("--profile", metavar="FILE", help="also cProfile N new buyers' deliveries into FILE "
                        "(read it with python -m pstats FILE)")
    args = parser.parse_args()
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        print("Set DATABASE_URL to the database to measure against.", file=sys.stderr)
        return 2
    os.environ.setdefault("COURSEGATE_LOG_LEVEL", "WARNING")
    os.environ.setdefault("CELERY_BROKER_URL", "memory://localhost/")
    os.environ.setdefault("SECRET_KEY", "bench-costs")

    from flask_migrate import upgrade
    from sqlalchemy import event, text

    from app import create_app
    from extensions import db
    from fulfillment.models import FulfillmentRule, Integration
    from membership.models import Course, Level, Member

    app = create_app()
    run = uuid.uuid4().hex[:8]
    secret, domain = f"COSTS{run}", f"{run}.costs.example"
    with app.app_context():
        upgrade()
        course = Course(title=f"Costs {run}", slug=f"costs-{run}", status="published")
        levels = [Level(name=f"Costs {name} {run}", slug=f"costs-{name}-{run}", courses=[course])
                  for name in ("pro", "bonus", "coaching")]
        integration = Integration(kind="thrivecart", name=f"costs {run}", secret=secret)
        db.session.add_all([course, *levels, integration])
        db.session.flush()
        db.session.add_all([
            FulfillmentRule(integration=integration, item_type="product", product_id="12", levels=[levels[0]]),
            FulfillmentRule(integration=integration, item_type="bump", product_id="12", levels=[levels[1]]),
            FulfillmentRule(integration=integration, item_type="upsell", product_id="3", levels=[levels[2]]),
        ])
        returning = [f"ret-{i}@{domain}" for i in range(args.n)]
        db.session.add_all([Member(email=email, name="Returning Buyer") for email in returning])
        db.session.commit()
        integration_id = integration.id
        engine = db.engine
        postgres = engine.dialect.name == "postgresql"

    statements: list[str] = []
    transactions: Counter = Counter()

    def _count(conn, cursor, statement, parameters, context, executemany):
        statements.append(" ".join(statement.split())[:150])

    # The session's engine, and its autocommit twin (single-statement reads: the receiver's integration lookup).
    import sqlutil

    with app.app_context():
        twin = sqlutil.autocommit_engine(engine)
    for counted_engine in (engine, twin):
        event.listen(counted_engine, "before_cursor_execute", _count)
    # Reads on the twin's raw cursor (sqlutil.Read: the receiver's integration) pass no SQLAlchemy event.
    raw_rows = sqlutil.Read.rows

    def counted_rows(self, engine, **values):
        statements.append(f"(raw cursor) {self._build().compile()}"[:150].replace("\n", " "))
        return raw_rows(self, engine, **values)

    sqlutil.Read.rows = counted_rows

    for name in ("begin", "commit", "rollback"):
        event.listen(engine, name, lambda conn, _name=name: transactions.update([_name]))
    pings = Counter()
    original_ping = engine.dialect.do_ping

    def do_ping(dbapi_connection):
        pings.update(["ping"])
        return original_ping(dbapi_connection)

    engine.dialect.do_ping = do_ping

    def backend_cpu() -> float:
        """CPU seconds of every PostgreSQL backend this process holds (the pool keeps one connection here)."""
        if not postgres:
            return 0.0
        return sum(cpu_seconds(backend_pids).values())

    backend_pids: set[int] = set()
    client = app.test_client()
    path = f"/webhooks/thrivecart/{integration_id}"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}

    def measure(label: str, bodies: list[bytes | None]) -> dict:
        per_statements, per_tx, per_ping, cpu, db_cpu = [], [], [], [], []
        for body in bodies:
            statements.clear()
            transactions.clear()
            pings.clear()
            db_before = backend_cpu()
            started = time.thread_time()
            if body is None:
                response = client.get("/healthz")
            else:
                response = client.post(path, data=body, headers=headers)
            cpu.append(time.thread_time() - started)
            db_cpu.append(backend_cpu() - db_before)
            assert response.status_code == 200, response.get_data(as_text=True)
            response.close()
            per_statements.append(len(statements))
            per_tx.append(sum(transactions.values()))
            per_ping.append(pings["ping"])
        return {"label": label, "statements": statistics.fmean(per_statements), "tx": statistics.fmean(per_tx),
                "pings": statistics.fmean(per_ping), "cpu_ms": statistics.median(cpu) * 1000,
                "db_cpu_ms": statistics.fmean(db_cpu) * 1000}

    if postgres:
        with app.app_context():
            backend_pids.add(db.session.scalar(text("SELECT pg_backend_pid()")))
            db.session.remove()
    order = iter(range(10**9))

    def order_id() -> str:
        return f"{run}{next(order):06d}"

    # Warm-up: the first requests compile statements, templates and caches.
    for i in range(20):
        client.post(path, data=delivery(secret, order_id(), f"warm-{i}@{domain}", ["product-12"]),
                    headers=headers).close()
        client.get("/healthz").close()
    if args.list:
        statements.clear()
        transactions.clear()
        client.post(path, data=delivery(secret, order_id(), f"listed@{domain}", ["product-12"]),
                    headers=headers).close()
        for number, statement in enumerate(statements, 1):
            print(f"{number:3d}  {statement}")
        print(f"     + {dict(transactions)}")
    new_bodies = [delivery(secret, order_id(), f"new-{i}@{domain}", ["product-12"]) for i in range(args.n)]
    bump_bodies = [delivery(secret, order_id(), f"bump-{i}@{domain}", ["product-12", "bump-12"])
                   for i in range(args.n)]
    returning_bodies = [delivery(secret, order_id(), email, ["product-12"]) for email in returning]
    if args.profile:
        import cProfile

        profiled = [delivery(secret, order_id(), f"prof-{i}@{domain}", ["product-12"]) for i in range(args.n)]
        with cProfile.Profile(time.thread_time) as profile:  # CPU, not time spent waiting on the database
            for body in profiled:
                client.post(path, data=body, headers=headers).close()
        profile.dump_stats(args.profile)
    def measure_together(label: str, bodies: list[bytes], at_once: int) -> dict:
        """Deliveries sent ``at_once`` at a time from as many threads, so the group-commit receiver batches
        them: the process's CPU (every thread) and the statements, per delivery."""
        import threading

        import observability

        def sizes():
            samples = observability.FULFILMENT_BATCH_SIZE.collect()[0].samples
            return {s.name.rsplit("_", 1)[1]: s.value for s in samples if s.name.endswith(("_sum", "_count"))}

        before = sizes()
        statements.clear()
        transactions.clear()
        pings.clear()
        started = time.process_time()
        for start in range(0, len(bodies), at_once):
            group = bodies[start:start + at_once]
            barrier = threading.Barrier(len(group))

            def send(body):
                own = app.test_client()
                barrier.wait()
                response = own.post(path, data=body, headers=headers)
                assert response.status_code == 200, response.get_data(as_text=True)
                response.close()

            threads = [threading.Thread(target=send, args=(body,)) for body in group]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        cpu = time.process_time() - started
        after = sizes()
        batches = after["count"] - before["count"]
        return {"label": label, "statements": len(statements) / len(bodies),
                "tx": sum(transactions.values()) / len(bodies), "pings": pings["ping"] / len(bodies),
                "cpu_ms": cpu / len(bodies) * 1000, "db_cpu_ms": float("nan"),
                "batch": (after["sum"] - before["sum"]) / batches if batches else 0}

    together = [delivery(secret, order_id(), f"together-{i}@{domain}", ["product-12"]) for i in range(args.n)]
    results = [
        measure("no-op GET /healthz", [None] * args.n),
        measure("new buyer, 1 item", new_bodies),
        measure("new buyer, 2 items (bump)", bump_bodies),
        measure("returning buyer, 1 item", returning_bodies),
        measure("redelivery", new_bodies[: args.n // 2]),
        measure_together("new buyers, 8 at once", together, 8),
    ]
    with app.app_context():
        db.engine.dispose()
    print(f"\nPer request, in-process (Flask test client, one at a time), {engine.dialect.name}, n={args.n} each:")
    print(f"  {'delivery':28s} {'statements':>10s} {'BEGIN/COMMIT':>12s} {'pre-ping':>8s} {'app CPU (median)':>17s}"
          f" {'DB CPU (mean)':>14s}")
    for r in results:
        print(f"  {r['label']:28s} {r['statements']:10.1f} {r['tx']:12.1f} {r['pings']:8.1f} "
              f"{r['cpu_ms']:14.2f} ms " + (f"{r['db_cpu_ms']:11.2f} ms" if r["db_cpu_ms"] == r["db_cpu_ms"] else
                                             f"   (batches of {r['batch']:.1f} on average; CPU of every thread)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
