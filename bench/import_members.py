"""Benchmark: import N members from CSV with `flask members import` against DATABASE_URL.

    DATABASE_URL=postgresql://user@127.0.0.1:5432/scratch .venv/bin/python bench/import_members.py [N]

Without DATABASE_URL it uses a fresh SQLite file. The database is migrated and its member tables emptied
first (do not point it at data you want to keep). Prints rows/s and the wall time of the import command;
the target is 100,000 rows in under a minute.
"""

from __future__ import annotations

import csv
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    workdir = Path(tempfile.mkdtemp(prefix="cg-bench-import-"))
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{workdir / 'bench.sqlite3'}"

    from flask_migrate import upgrade
    from sqlalchemy import delete, func, select

    import timeutil
    from app import create_app
    from extensions import db
    from membership.models import Course, Grant, Level, Member
    from membership.tags import MemberTag, Tag

    app = create_app({"DATABASE_URL": url, "SECRET_KEY": "bench", "COURSEGATE_MAIL_DIR": str(workdir / "mail")})
    with app.app_context():
        upgrade()
        for model in (MemberTag, Tag, Grant, Member):
            db.session.execute(delete(model))
        course = Course(title="Bench", slug=f"bench-{time.time_ns()}", status="published")
        levels = [Level(name=f"L{i}", slug=f"bench-level-{i}-{time.time_ns()}", courses=[course]) for i in range(3)]
        db.session.add_all(levels)
        db.session.commit()
        slugs = [level.slug for level in levels]

        # A fifth of the rows are existing members (merged), in another case.
        existing = n // 5
        moment = timeutil.now()
        db.session.execute(Member.__table__.insert(), [
            {"email": f"member{i}@example.com", "name": "", "login_nonce": "", "created_at": moment,
             "updated_at": moment} for i in range(existing)])
        db.session.commit()

    path = workdir / "members.csv"
    rng = random.Random(7)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["email", "name", "levels", "tags", "external_source"])
        for i in range(n):
            email = f"Member{i}@Example.com" if i < existing else f"member{i}@example.com"
            writer.writerow([email, f"Member {i}", ";".join(rng.sample(slugs, rng.randint(0, 2))),
                             ";".join(rng.sample(["vip", "newsletter", "keap:imported", "cohort-1"],
                                                 rng.randint(0, 3))),
                             rng.choice(["infusionsoft", "keap", ""])])

    runner = app.test_cli_runner()
    started = time.perf_counter()
    result = runner.invoke(args=["members", "import", str(path)])
    elapsed = time.perf_counter() - started
    if result.exit_code != 0:
        print(result.output, file=sys.stderr)
        raise SystemExit(f"import failed: {result.exception!r}")
    print(result.output.strip().splitlines()[-1])
    with app.app_context():
        members = db.session.scalar(select(func.count(Member.id)))
        grants = db.session.scalar(select(func.count(Grant.id)))
        tagged = db.session.scalar(select(func.count()).select_from(MemberTag))
    backend = url.split(":", 1)[0]
    print(f"database: {backend}")
    print(f"rows: {n}  members now: {members}  grants: {grants}  member tags: {tagged}")
    print(f"import took {elapsed:.1f} s = {n / elapsed:,.0f} rows/s ({'under' if elapsed < 60 else 'OVER'} a minute)")

    started = time.perf_counter()
    result = runner.invoke(args=["members", "export", str(workdir / "export.csv")])
    print(f"export took {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
