"""Benchmark: the admin's pages with 100,000 members (target: every page within 200 ms).

Run against an empty scratch database (it adds 100,000 members and as many cart deliveries):
    DATABASE_URL=postgresql://user@127.0.0.1:5432/scratch .venv/bin/python bench/admin_pages.py
Prints the best-of-five time of each page, as the page's own cost on a machine that may be busy.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BUDGET_SECONDS = 0.200


def main() -> None:
    from admin import auth
    from app import create_app
    from extensions import db
    from membership.models import Member
    # The same 100,000 members (and deliveries) and the same pages as the suite's scale test.
    from tests.admin.test_scale import MEMBERS, PAGES, fill

    app = create_app({"RATELIMIT_ENABLED": False})
    with app.app_context():
        existing = db.session.scalar(select(func.count(Member.id)))
        email = f"bench-owner-{time.time_ns()}@example.com"
        auth.create_owner(db.session, email, "bench password 123")
        db.session.commit()
    integration = None
    if not existing:
        started = time.perf_counter()
        integration = fill(app)
        print(f"filled {MEMBERS} members and deliveries in {time.perf_counter() - started:.1f} s")
    client = app.test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/login").text).group(1)
    client.post("/admin/login", data={"csrf_token": token, "email": email, "password": "bench password 123"})
    print(f"database: {app.config['SQLALCHEMY_DATABASE_URI'].split('://')[0]}, members: {existing or MEMBERS}")
    worst = 0.0
    for path in PAGES:
        if "{integration}" in path:
            if integration is None:
                continue
            path = path.format(integration=integration)
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
