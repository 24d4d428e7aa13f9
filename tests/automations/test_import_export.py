"""`flask members import` / `export`: round trips, merging, bad rows, dry run, strict mode, no partial state."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy import func, select

from extensions import db
from membership import services
from membership.models import Grant, Level, Member
from membership.tags import MemberTag, Tag
from tests import factories
from membership import grants


@pytest.fixture
def catalog(app):
    with app.app_context():
        factories.make_level(slug="gold")
        factories.make_level(slug="silver", duration_days=30)
        db.session.commit()


def _write(tmp_path, text, name="members.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def _counts(app):
    with app.app_context():
        return tuple(db.session.scalar(select(func.count()).select_from(model)) for model in (Member, Grant, MemberTag))


GOOD = """email,name,levels,tags,external_source
Ann@Example.com,Ann Lee,gold;silver,vip;keap:imported,infusionsoft
bob@example.com,Bob,,newsletter,
"""


def test_import_creates_members_with_levels_and_tags(app, runner, catalog, tmp_path):
    result = runner.invoke(args=["members", "import", _write(tmp_path, GOOD)])
    assert result.exit_code == 0, result.output
    assert "2 member(s) created" in result.output and "2 grant(s) and 3 tag(s) added, 0 rejected" in result.output
    with app.app_context():
        ann = services.member_by_email(db.session, "ann@example.com")
        assert ann.name == "Ann Lee" and ann.external_source == "infusionsoft"
        grants = db.session.scalars(select(Grant).where(Grant.member_id == ann.id).order_by(Grant.level_id)).all()
        assert [(g.level.slug, g.source_kind, g.ends_at is None) for g in grants] == [
            ("gold", "import", True), ("silver", "import", False)]
        tags = db.session.execute(select(Tag.name, MemberTag.applied_by).join(MemberTag)
                                  .where(MemberTag.member_id == ann.id).order_by(Tag.name)).all()
        assert tags == [("keap:imported", "import"), ("vip", "import")]


def test_import_merges_existing_emails_in_any_case(app, runner, catalog, tmp_path):
    with app.app_context():
        member = factories.make_member(email="ann@example.com", name="Old Name")
        gold = db.session.scalar(select(Level).where(Level.slug == "gold"))
        grants.open_grant(db.session, member, gold)
        db.session.commit()
    result = runner.invoke(args=["members", "import", _write(tmp_path, GOOD)])
    assert "1 member(s) created, 1 updated" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count(Member.id))) == 2
        ann = services.member_by_email(db.session, "ANN@example.com")
        assert ann.name == "Ann Lee"
        assert sorted(g.level.slug for g in db.session.scalars(select(Grant).where(Grant.member_id == ann.id))) == [
            "gold", "silver"]  # gold was already open: not granted twice
    again = runner.invoke(args=["members", "import", _write(tmp_path, GOOD)])
    assert "0 member(s) created, 0 updated, 2 unchanged, 0 grant(s) and 0 tag(s) added" in again.output


BAD = """email,name,levels,tags,external_source
good@example.com,Good,gold,,
not-an-email,X,,,
,No Email,,,
dup@example.com,First,,,
DUP@example.com,Second,,,
lvl@example.com,L,platinum;gold,,
tag@example.com,T,,ok;has space,
extra@example.com,E,,,,surplus
"""


def test_bad_rows_are_rejected_with_reasons_and_the_rest_imported(app, runner, catalog, tmp_path):
    rejects = tmp_path / "rejects.csv"
    result = runner.invoke(args=["members", "import", _write(tmp_path, BAD), "--rejects", str(rejects)])
    assert result.exit_code == 0, result.output
    assert "line 3: not-an-email: invalid email" in result.output
    assert "line 4: (no email): missing email" in result.output
    assert "line 6: DUP@example.com: duplicate of line 5" in result.output
    assert "line 7: lvl@example.com: unknown level(s): platinum" in result.output
    assert "line 8: tag@example.com: invalid tag name(s): has space" in result.output
    assert "line 9: extra@example.com: more values than columns" in result.output
    assert "2 member(s) created" in result.output and "6 rejected" in result.output
    rows = list(csv.DictReader(io.StringIO(rejects.read_text())))
    assert [r["line"] for r in rows] == ["3", "4", "6", "7", "8", "9"] and rows[0]["reason"] == "invalid email"
    with app.app_context():
        assert sorted(db.session.scalars(select(Member.email))) == ["dup@example.com", "good@example.com"]


def test_strict_and_dry_run_change_nothing(app, runner, catalog, tmp_path):
    strict = runner.invoke(args=["members", "import", _write(tmp_path, BAD), "--strict"])
    assert strict.exit_code == 1 and "Nothing was imported (--strict)" in strict.output
    assert _counts(app) == (0, 0, 0)
    dry = runner.invoke(args=["members", "import", _write(tmp_path, GOOD), "--dry-run"])
    assert dry.exit_code == 0 and "Dry run, nothing changed. 2 row(s): 2 member(s) created" in dry.output
    assert _counts(app) == (0, 0, 0)


def test_a_failure_midway_leaves_no_partial_state(app, runner, catalog, tmp_path, monkeypatch):
    from membership import transfer

    real_bulk_insert = transfer._bulk_insert

    def failing_bulk_insert(session, table, rows):
        if table is MemberTag.__table__:  # the last step: members, grants and tags are written by now
            raise RuntimeError("disk full")
        return real_bulk_insert(session, table, rows)

    monkeypatch.setattr(transfer, "_bulk_insert", failing_bulk_insert)
    result = runner.invoke(args=["members", "import", _write(tmp_path, GOOD)])
    assert result.exit_code != 0
    assert _counts(app) == (0, 0, 0)
    with app.app_context():
        assert db.session.scalar(select(func.count(Tag.id))) == 0


def test_unusable_files_are_refused(runner, catalog, tmp_path):
    no_email = runner.invoke(args=["members", "import", _write(tmp_path, "name\nAnn\n")])
    assert no_email.exit_code == 1 and "No 'email' column" in no_email.output
    unknown = runner.invoke(args=["members", "import", _write(tmp_path, "email,phone\na@b.co,1\n")])
    assert "Unknown column(s): phone" in unknown.output
    empty = runner.invoke(args=["members", "import", _write(tmp_path, "")])
    assert "The file is empty" in empty.output


def test_export_then_import_round_trips(app, runner, catalog, tmp_path):
    assert runner.invoke(args=["members", "import", _write(tmp_path, GOOD)]).exit_code == 0
    exported = tmp_path / "export.csv"
    result = runner.invoke(args=["members", "export", str(exported)])
    assert result.exit_code == 0 and "Exported 2 member(s)" in result.output
    text = exported.read_text()
    assert text.splitlines() == [
        "email,name,levels,tags,external_source",
        "ann@example.com,Ann Lee,gold;silver,keap:imported;vip,infusionsoft",
        "bob@example.com,Bob,,newsletter,",
    ]
    # Into an empty database: the same export comes back out.
    with app.app_context():
        from tests.conftest import _truncate

        _truncate(app)
        factories.make_level(slug="gold")
        factories.make_level(slug="silver", duration_days=30)
        db.session.commit()
    assert runner.invoke(args=["members", "import", str(exported)]).exit_code == 0
    again = tmp_path / "again.csv"
    runner.invoke(args=["members", "export", str(again)])
    assert again.read_text() == text


def test_export_to_stdout(runner, catalog, tmp_path):
    runner.invoke(args=["members", "import", _write(tmp_path, GOOD)])
    result = runner.invoke(args=["members", "export", "-"])
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["email"] for r in rows] == ["ann@example.com", "bob@example.com"]
