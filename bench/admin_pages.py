"""Benchmark: the admin's pages with 100,000 members (target: every page within 200 ms).

Run against a scratch database (it adds 100,000 members when the database has none):
    DATABASE_URL=postgresql://user@127.0.0.1:5432/scratch .venv/bin/python bench/admin_pages.py
Prints the best-of-five time of each page, as the page's own cost on a machine that may be busy.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

from sqlalchemy import func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MEMBERS = 100_000
BUDGET_SECONDS = 0.200

POSTGRES_FILL = """
INSERT INTO members (email, name, login_nonce, created_at, updated_at)
SELECT 'member' || n || '@example' || (n % 97) || '.com',
       (ARRAY['Ann','Bob','Cleo','Dev','Eve','Femi','Gus','Hana'])[1 + n % 8] || ' ' || md5(n::text),
       '', now() - (n % 1095) * interval '1 day', now()
FROM generate_series(1, :count) AS n;
INSERT INTO grants (member_id, level_id, status, starts_at, revoked_at, revoke_reason, source_kind,
                    created_at, updated_at)
SELECT id, :level_id, CASE WHEN id % 10 = 0 THEN 'revoked' ELSE 'active' END, now() - interval '200 days',
       CASE WHEN id % 10 = 0 THEN now() - (id % 1095) * interval '1 day' END,
       CASE WHEN id % 10 = 0 THEN 'refund' END, 'manual', now(), now()
FROM members;
"""

SQLITE_FILL = """
WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < :count)
INSERT INTO members (email, name, login_nonce, created_at, updated_at)
SELECT 'member' || n || '@example' || (n % 97) || '.com', 'Member ' || hex(randomblob(8)), '',
       datetime('now', '-' || (n % 1095) || ' days'), datetime('now') FROM seq;
INSERT INTO grants (member_id, level_id, status, starts_at, revoked_at, revoke_reason, source_kind,
                    created_at, updated_at)
SELECT id, :level_id, CASE WHEN id % 10 = 0 THEN 'revoked' ELSE 'active' END, datetime('now', '-200 days'),
       CASE WHEN id % 10 = 0 THEN datetime('now', '-' || (id % 1095) || ' days') END,
       CASE WHEN id % 10 = 0 THEN 'refund' END, 'manual', datetime('now'), datetime('now')
FROM members;
ANALYZE;
"""

PAGES = [
    "/admin/",
    "/admin/members",
    "/admin/members?page=1500",
    "/admin/members?q=member4242@",
    "/admin/members?q=cleo",
    "/admin/members?q=example13.com&page=3",
    "/admin/members/777",
    "/admin/emails",
]


def fill(app, count: int = MEMBERS) -> None:
    """Members who joined over three years (about 8,000 in the chart's 90 days), one grant each, a tenth revoked."""
    from extensions import db
    from membership.models import Course, Level

    with app.app_context():
        course = Course(title="Bench course", slug=f"bench-course-{time.time_ns()}", status="published")
        level = Level(name="Bench level", slug=f"bench-level-{time.time_ns()}", courses=[course])
        db.session.add(level)
        db.session.commit()
        postgres = db.engine.dialect.name == "postgresql"
        with db.engine.begin() as conn:
            for statement in filter(str.strip, (POSTGRES_FILL if postgres else SQLITE_FILL).split(";")):
                conn.execute(text(statement), {"count": count, "level_id": level.id})
        if postgres:  # what autovacuum does to a table that size: statistics and the visibility map
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE members, grants"))


def main() -> None:
    from admin import auth
    from app import create_app
    from extensions import db
    from membership.models import Member

    app = create_app({"RATELIMIT_ENABLED": False})
    with app.app_context():
        existing = db.session.scalar(select(func.count(Member.id)))
        email = f"bench-owner-{time.time_ns()}@example.com"
        auth.create_owner(db.session, email, "bench password 123")
        db.session.commit()
    if not existing:
        started = time.perf_counter()
        fill(app)
        print(f"filled {MEMBERS} members in {time.perf_counter() - started:.1f} s")
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/login").text).group(1)
    client.post("/admin/login", data={"csrf_token": token, "email": email, "password": "bench password 123"})
    print(f"database: {app.config['SQLALCHEMY_DATABASE_URI'].split('://')[0]}, members: {existing or MEMBERS}")
    worst = 0.0
    for path in PAGES:
        client.get(path)  # warm, as a page an owner comes back to
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            response = client.get(path)
            runs.append(time.perf_counter() - started)
        best = min(runs)
        worst = max(worst, best)
        print(f"{path:45s} {response.status_code}  best {best * 1000:6.1f} ms  median {sorted(runs)[2] * 1000:6.1f} ms")
    print(f"slowest page: {worst * 1000:.1f} ms (target {BUDGET_SECONDS * 1000:.0f} ms): "
          f"{'met' if worst < BUDGET_SECONDS else 'NOT met'}")


if __name__ == "__main__":
    main()
