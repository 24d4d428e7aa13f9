"""Benchmark: set external_source for 100,000 members from a CSV, as `flask members set-external-source` does;
then the admin's "every member matching this search" bulk changes (external source, add tag) over the same members.

Run: DATABASE_URL=... .venv/bin/python bench/bulk_external_source.py [--members 100000]
Seeds members into the database named by DATABASE_URL (after `flask db upgrade`), then prints the figures.
The members it creates use the domain bench-bulk.example and are deleted afterwards.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=int, default=100_000)
    args = parser.parse_args()

    from sqlalchemy import delete, insert, select

    import timeutil
    from app import create_app
    from extensions import db
    from membership import bulk
    from membership.models import Member
    from membership.tags import MemberTag, Tag

    app = create_app()
    with app.app_context():
        db.session.execute(delete(Member).where(Member.email.like("%@bench-bulk.example")))
        now = timeutil.now()
        started = time.perf_counter()
        for start in range(0, args.members, 10_000):
            db.session.execute(insert(Member), [
                {"email": f"m{i}@bench-bulk.example", "name": "", "login_nonce": "", "created_at": now,
                 "updated_at": now} for i in range(start, min(start + 10_000, args.members))])
        db.session.commit()
        seeded = time.perf_counter() - started

        emails = [f"M{i}@Bench-Bulk.example" for i in range(args.members)] + ["ghost@bench-bulk.example"]
        started = time.perf_counter()
        result = bulk.set_external_source(db.session, "infusionsoft", emails=emails)
        db.session.commit()
        elapsed = time.perf_counter() - started

        searched = {}
        for action, value in (("set_external_source", "keap"), ("add_tag", "bench-bulk")):
            started = time.perf_counter()
            searched[action] = (bulk.apply(db.session, action, value, search="bench-bulk.example"),
                                time.perf_counter() - started)
            db.session.commit()
        bench_tag = select(Tag.id).where(Tag.name == "bench-bulk")
        db.session.execute(delete(MemberTag).where(MemberTag.tag_id.in_(bench_tag)))
        db.session.execute(delete(Tag).where(Tag.name == "bench-bulk"))
        db.session.execute(delete(Member).where(Member.email.like("%@bench-bulk.example")))
        db.session.commit()

    print(f"database:            {app.config['SQLALCHEMY_DATABASE_URI'].split('://')[0]}")
    print(f"members seeded:      {args.members} in {seeded:.1f} s")
    print(f"bulk update:         {result.matched} matched, {result.changed} changed, "
          f"{len(result.not_found)} not found in {elapsed:.2f} s ({result.matched / elapsed:,.0f} members/s)")
    for action, (found, seconds) in searched.items():
        print(f"search, {action + ':':21s}{found.matched} matched, {found.changed} changed in {seconds:.2f} s")


if __name__ == "__main__":
    main()
