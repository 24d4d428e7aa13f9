"""The admin's search at 100,000 members uses the indexes (timings are measured by bench/admin_pages.py,
never by a timed test)."""

from __future__ import annotations

import pytest

from bench.admin_pages import PAGES, fill
from extensions import db


def test_every_page_answers_with_100k_members(admin, app):
    fill(app)
    for path in PAGES:
        assert admin.get(path).status_code == 200, path


@pytest.mark.postgres
def test_member_search_uses_the_trigram_indexes(admin, app):
    fill(app)
    from admin.services import search_members

    with app.app_context():
        # A rare term, as a search for one person is: the planner goes to the trigram indexes.
        compiled = search_members("4242@example").limit(50).compile(db.engine)
        plan = "\n".join(row[0] for row in db.session.connection().exec_driver_sql(f"EXPLAIN {compiled}",
                                                                                   compiled.params))
    assert "ix_members_email_trgm" in plan, plan
