"""Benchmark the ThriveCart receiver under gunicorn against DATABASE_URL.

    DATABASE_URL=postgresql://user@127.0.0.1:5432/dbname .venv/bin/python bench/webhooks.py [-n 5000] [-c 16]

Migrates the database, adds a fresh integration (its own rules, levels and 30% returning buyers, all tagged with
a run id, so existing data is left alone and the checks are exact), starts gunicorn, measures a no-op endpoint of
the same server (``GET /healthz``) as the floor, then sends N realistic ThriveCart deliveries (form-encoded,
70% new buyers, 30% returning; a fifth with a bump, a tenth with an upsell; 2% exact redeliveries) at
concurrency C. Prints orders/s, p50/p95/p99, the ratio to the floor, the CPU each delivery cost the web server,
PostgreSQL (when local) and the load generator, and checks the database.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import http.client
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# A real order.success (shared/reference/fixtures/thrivecart/order.success.subscription.json), trimmed of
# nothing that a receiver reads; ids and emails are replaced per delivery.
TEMPLATE = {
    "event": "order.success", "mode": "live", "mode_int": "2", "thrivecart_account": "bench",
    "thrivecart_secret": "", "base_product": "12", "base_product_name": "Mobile &amp; Universal App Pro",
    "base_product_label": "", "base_product_owner": "110359", "order_id": "", "invoice_id": "",
    "subscription_ids": {}, "order_date": "2023-11-08 23:48:20", "order_timestamp": "1699487300",
    "currency": "USD", "customer_id": "", "customer_identifier": "null",
    "customer": {"id": "", "client_user_agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)", "origin": "vanity",
                 "name": "Jane Buyer", "email": "", "business_name": "Example Co", "ip_address": "203.0.113.39",
                 "address": {"country": "ID"}, "first_name": "Jane", "last_name": "Buyer",
                 "checkbox_confirmation": "false"},
    "affiliate": "null",
    "order": {"id": "", "invoice_id": "", "processor": "stripe_v2", "total": "499700", "total_str": "4997.00",
              "date": "2023-11-08 23:48:20", "date_unix": "1699487300", "tracking_id": "null", "tax": "null",
              "charges": []},
    "transactions": {}, "subscriptions": {}, "purchases": [], "purchase_map": [], "purchase_map_flat": "",
    "fulfillment": {"url": "https://deals.example.com/confirm/"},
}
ITEMS = {"product-12": ("Mobile &amp; Universal App Pro", "83322"), "bump-12": ("Setup bump", "90001"),
         "upsell-3": ("Coaching upsell", "90003")}


def form_pairs(tree, prefix=""):
    pairs = []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree)
    for key, value in items:
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, (dict, list)):
            pairs.extend(form_pairs(value, name))
        else:
            pairs.append((name, str(value)))
    return pairs


def delivery(secret: str, order_id: str, email: str, refs: list[str]) -> bytes:
    tree = copy.deepcopy(TEMPLATE)
    tree.update(thrivecart_secret=secret, order_id=order_id, invoice_id=order_id.rjust(9, "0"),
                customer_id=order_id, purchase_map=refs, purchase_map_flat=",".join(refs),
                purchases=[ITEMS[r][0] for r in refs], subscription_ids={"product-12": f"s{order_id}"},
                subscriptions={"product-12": f"sub_{order_id}"}, transactions={r: f"ch_{order_id}_{r}" for r in refs})
    tree["customer"].update(id=order_id, email=email)
    tree["order"].update(id=order_id, invoice_id=tree["invoice_id"])
    tree["order"]["charges"] = [
        {"name": ITEMS[r][0], "reference": r.split("-")[1], "item_type": r.split("-")[0], "amount": "499700",
         "type": "single", "quantity": "1", "payment_plan_id": ITEMS[r][1], "payment_plan_name": "Plan"}
        for r in refs]
    return urlencode(form_pairs(tree)).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """Send requests from C threads over keep-alive connections; record (latency, status, body) per request."""

    def __init__(self, port: int, concurrency: int, *, new_connections: bool = False):
        """``new_connections``: every request on a connection of its own (``Connection: close``), as carts post."""
        self.port, self.concurrency, self.new_connections = port, concurrency, new_connections

    def run(self, requests_: list[tuple[str, str, bytes | None, dict]], keep_headers: bool = False
            ) -> tuple[float, list]:
        """``keep_headers``: each result also carries the response's header list."""
        results: list = [None] * len(requests_)
        next_index = iter(range(len(requests_)))
        lock = threading.Lock()

        def worker():
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
            while True:
                with lock:
                    i = next(next_index, None)
                if i is None:
                    break
                method, path, body, headers = requests_[i]
                for attempt in range(3):
                    started = time.perf_counter()
                    try:
                        conn.request(method, path, body=body,
                                     headers={**headers, "Connection": "close"} if self.new_connections else headers)
                        response = conn.getresponse()
                        data = response.read()
                        results[i] = (time.perf_counter() - started, response.status, data)
                        if keep_headers:
                            results[i] += (response.getheaders(),)
                        if response.getheader("Connection", "").lower() == "close":
                            conn.close()
                        break
                    except (ConnectionError, http.client.HTTPException, OSError):
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                        if attempt == 2:
                            raise
            conn.close()

        threads = [threading.Thread(target=worker) for _ in range(self.concurrency)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return time.perf_counter() - started, results


def cpu_seconds(pids) -> dict[int, float]:
    """User + system CPU of each live process (Linux /proc)."""
    found = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return found


def processes(*, parent: int | None = None, name: str | None = None) -> list[int]:
    """Pids of the children of ``parent`` (and ``parent`` itself), or of every process called ``name``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if (parent is not None and (ppid == parent or int(entry.name) == parent)) or (name and comm == name):
            found.append(int(entry.name))
    return found


def cpu_used(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def is_local(database_url: str) -> bool:
    return any(host in database_url for host in ("@127.0.0.1", "@localhost", "@/", "@:"))


class CpuMeter:
    """CPU used while the block runs by the web server (``server_pid`` and its children), every local
    ``postgres`` process (when the database is local: run it on an otherwise quiet server) and this load
    generator. ``used`` maps each part to seconds; ``add`` accumulates several blocks."""

    def __init__(self, server_pid: int, database_url: str):
        self.server_pid, self.local_db = server_pid, is_local(database_url)
        self.used: dict[str, float] = {"web server": 0.0, "load generator": 0.0}
        if self.local_db:
            self.used["PostgreSQL"] = 0.0

    def __enter__(self):
        self._web = cpu_seconds(processes(parent=self.server_pid))
        self._db = cpu_seconds(processes(name="postgres")) if self.local_db else {}
        self._client = time.process_time()
        return self

    def __exit__(self, *exc):
        self.used["web server"] += cpu_used(self._web, cpu_seconds(processes(parent=self.server_pid)))
        self.used["load generator"] += time.process_time() - self._client
        if self.local_db:
            self.used["PostgreSQL"] += cpu_used(self._db, cpu_seconds(processes(name="postgres")))


def server_env(run: str) -> dict | None:
    """The benchmark server's environment: DATABASE_URL's database (None, with a message, without it), quiet
    logs, emails to a scratch directory."""
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        print("Set DATABASE_URL (PostgreSQL) to the database to benchmark against.", file=sys.stderr)
        return None
    workdir = Path(tempfile.mkdtemp(prefix="coursegate-bench-"))
    (workdir / "metrics").mkdir()
    return {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(workdir / "metrics"), "DATABASE_URL": database_url, "SECRET_KEY": os.environ.get("SECRET_KEY", "bench-" + run),
            "COURSEGATE_LOG_LEVEL": "WARNING", "COURSEGATE_MAIL_DIR": str(workdir / "mail"),
            "SITE_URL": "http://127.0.0.1",
            # Rate limits are not measured here: let several workers count them each on their own.
            "COURSEGATE_RATELIMIT_PER_PROCESS": "1"}


def migrate(env: dict) -> None:
    subprocess.run([sys.executable, "-m", "flask", "--app", "app", "db", "upgrade"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@contextlib.contextmanager
def gunicorn(env: dict, workers: int, threads: int, port: int | None = None, app: str = "app:create_app()"):
    """gunicorn (gunicorn.conf.py's settings and worker class) serving ``app`` (default the service) with ``env``,
    once it answers ``/healthz``; yields ``(process, port)`` and stops the server afterwards."""
    port = port or free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", str(workers),
         "--threads", str(threads), "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
         "--keep-alive", "5", app],
        cwd=ROOT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("gunicorn did not start")
            time.sleep(0.2)
        yield server, port
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def batch_sizes(port: int) -> dict:
    """The group-commit receiver's batch sizes, from the server's /metrics (all workers): ``{"count", "sum",
    "buckets": {upper bound: batches of at most that size}}``."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    found = {"count": 0.0, "sum": 0.0, "buckets": {}}
    for line in text.splitlines():
        if not line.startswith("coursegate_fulfilment_batch_size"):
            continue
        name, value = line.rsplit(" ", 1)
        if name.startswith("coursegate_fulfilment_batch_size_bucket"):
            bound = name.split('le="', 1)[1].split('"', 1)[0]
            found["buckets"][bound] = float(value)
        elif name.startswith("coursegate_fulfilment_batch_size_count"):
            found["count"] = float(value)
        elif name.startswith("coursegate_fulfilment_batch_size_sum"):
            found["sum"] = float(value)
    return found


def describe_batches(found: dict) -> str:
    if not found["count"]:
        return "none seen (/metrics had no coursegate_fulfilment_batch_size)"
    parts, below = [], 0.0
    for bound, cumulative in found["buckets"].items():
        if cumulative - below:
            label = "more" if bound == "+Inf" else f"<={float(bound):.0f}"
            parts.append(f"{label}: {cumulative - below:.0f}")
        below = cumulative
    return (f"{found['count']:.0f} batches, mean {found['sum'] / found['count']:.1f} deliveries "
            f"({', '.join(parts)})")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=5000, help="deliveries to send (default 5000)")
    parser.add_argument("-c", type=int, default=16, help="concurrent clients (default 16)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2, as gunicorn.conf.py)")
    parser.add_argument("--threads", type=int, default=8, help="threads per gunicorn worker (gthread, default 8 as gunicorn.conf.py)")
    parser.add_argument("--inline-email", action="store_true",
                        help="deliver welcome emails in the web process after each response (the embedded "
                             "default) instead of leaving them to a worker")
    parser.add_argument("--new-connections", action="store_true",
                        help="every request on a connection of its own, as carts post (default: keep-alive, as wrk)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    run = uuid.uuid4().hex[:8]
    env = server_env(run)
    if env is None:
        return 2
    database_url = env["DATABASE_URL"]
    secret = f"BENCH{run}"
    domain = f"{run}.bench.example"
    if not args.inline_email:
        # Deliveries are handed to a broker nobody reads: the outbox rows are the record, as with real workers.
        env["CELERY_BROKER_URL"] = "memory://localhost/"
    os.environ.update(env)

    migrate(env)

    rng = random.Random(args.seed)
    n_dup = round(args.n * 0.02)
    n_orders = args.n - n_dup
    n_returning_orders = round(n_orders * 0.3)
    returning_pool = [f"ret-{i}@{domain}" for i in range(max(1, n_returning_orders // 3))]

    from sqlalchemy import func, select, text

    from app import create_app
    from emails.models import OutboundEmail
    from extensions import db
    from fulfillment.models import FulfillmentRule, Integration, WebhookEvent
    from membership.models import Course, Grant, Level, Member

    app = create_app()
    with app.app_context():
        course = Course(title=f"Bench {run}", slug=f"bench-{run}", status="published")
        levels = [Level(name=f"Bench {name} {run}", slug=f"bench-{name}-{run}", courses=[course])
                  for name in ("pro", "bonus", "coaching")]
        integration = Integration(kind="thrivecart", name=f"bench {run}", secret=secret)
        db.session.add_all([course, *levels, integration])
        db.session.flush()
        db.session.add_all([
            FulfillmentRule(integration=integration, item_type="product", product_id="12", levels=[levels[0]]),
            FulfillmentRule(integration=integration, item_type="bump", product_id="12", levels=[levels[1]]),
            FulfillmentRule(integration=integration, item_type="upsell", product_id="3", levels=[levels[2]]),
        ])
        db.session.add_all([Member(email=email, name="Returning Buyer") for email in returning_pool])
        db.session.commit()
        integration_id = integration.id
        db.engine.dispose()

    # The workload: unique orders, then 2% exact redeliveries slotted in after their original.
    orders = []
    new_emails = set()
    expected_grants = 0
    for i in range(n_orders):
        returning = i < n_returning_orders
        email = rng.choice(returning_pool) if returning else f"new-{i}@{domain}"
        if not returning:
            new_emails.add(email)
        refs = ["product-12"]
        if rng.random() < 0.2:
            refs.append("bump-12")
        if rng.random() < 0.1:
            refs.append("upsell-3")
        expected_grants += len(refs)
        orders.append(delivery(secret, f"{run}{i:06d}", email.upper() if rng.random() < 0.1 else email, refs))
    rng.shuffle(orders)
    sequence = list(orders)
    for _ in range(n_dup):
        body = orders[rng.randrange(len(orders))]
        sequence.insert(rng.randrange(sequence.index(body) + 1, len(sequence) + 1), body)
    path = f"/webhooks/thrivecart/{integration_id}"
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    work = [("POST", path, body, headers) for body in sequence]

    with gunicorn(env, args.workers, args.threads) as (server, port):
        client = Client(port, args.c, new_connections=args.new_connections)
        client.run([("GET", "/healthz", None, {})] * 500 + [("HEAD", path, None, {})] * 200)  # warm every worker
        floor_seconds, floor = client.run([("GET", "/healthz", None, {})] * args.n)
        # Where the CPU of the delivery phase goes: the web server, PostgreSQL (when local) and this load generator.
        with CpuMeter(server.pid, database_url) as meter:
            seconds, results = client.run(work)
        cpu = meter.used
        batches = batch_sizes(port)

    import json

    latencies = [r[0] for r in results]
    statuses: dict[str, int] = {}
    bad = 0
    for _, code, data in results:
        if code != 200:
            bad += 1
            continue
        status = json.loads(data)["status"]
        statuses[status] = statuses.get(status, 0) + 1
    floor_rate = len(floor) / floor_seconds
    rate = len(results) / seconds

    with app.app_context():
        like = f"%@{domain}"
        counts = {
            "members created": db.session.scalar(select(func.count(Member.id)).where(Member.email.like(like)))
            - len(returning_pool),
            "grants": db.session.scalar(select(func.count(Grant.id)).where(Grant.integration_id == integration_id)),
            "welcome emails queued": db.session.scalar(select(func.count(OutboundEmail.id)).where(
                OutboundEmail.template == "welcome", OutboundEmail.recipient.like(like))),
            "processed events": db.session.scalar(select(func.count(WebhookEvent.id)).where(
                WebhookEvent.integration_id == integration_id, WebhookEvent.status == "processed")),
            "duplicate events": db.session.scalar(select(func.count(WebhookEvent.id)).where(
                WebhookEvent.integration_id == integration_id, WebhookEvent.status == "duplicate")),
            "order lines granted twice": db.session.scalar(text(
                "SELECT count(*) FROM (SELECT 1 FROM grants WHERE integration_id = :i "
                "GROUP BY order_ref, line_ref, level_id HAVING count(*) > 1) AS twice"), {"i": integration_id}),
        }
        db.engine.dispose()
    expected = {"members created": len(new_emails), "grants": expected_grants,
                "welcome emails queued": len(new_emails), "processed events": n_orders,
                "duplicate events": n_dup, "order lines granted twice": 0}

    print(f"\nCoursegate webhook benchmark: N={args.n} C={args.c}, gunicorn {args.workers} workers x "
          f"{args.threads} threads, {'inline' if args.inline_email else 'queued'} email, "
          f"{database_url.split('@')[-1]}")
    print(f"  deliveries      {len(results)} in {seconds:.2f} s: {rate:.0f} orders/s "
          f"({statuses.get('processed', 0)} processed, {statuses.get('duplicate', 0)} duplicate, {bad} non-200)")
    print(f"  latency         p50 {percentile(latencies, 50) * 1000:.1f} ms   p95 {percentile(latencies, 95) * 1000:.1f} ms"
          f"   p99 {percentile(latencies, 99) * 1000:.1f} ms   max {max(latencies) * 1000:.1f} ms"
          f"   mean {statistics.fmean(latencies) * 1000:.1f} ms")
    print(f"  no-op floor     {floor_rate:.0f} req/s (GET /healthz, same server, same C); "
          f"fulfilment is {rate / floor_rate:.0%} of the floor")
    print(f"  batch sizes     {describe_batches(batches)}")
    print("  CPU per delivery " + "   ".join(f"{name} {used / len(results) * 1000:.1f} ms" for name, used in cpu.items())
          + f"   (machine: {os.cpu_count()} cores = {os.cpu_count() * 1000 / rate:.1f} ms of CPU per delivery)")
    ok = bad == 0
    print("  database checks")
    for name, value in counts.items():
        good = value == expected[name]
        ok &= good
        print(f"    {'ok  ' if good else 'FAIL'} {name}: {value} (expected {expected[name]})")
    print("ALL CHECKS EXACT" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
