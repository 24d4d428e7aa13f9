"""Bulk external source: by ids, by level, by emails; through the API and the CLI."""

from sqlalchemy import insert, select

from extensions import db
from membership.models import Member
from tests import factories


def test_bulk_update_by_emails_reports_not_found_and_invalid(api, app):
    with app.app_context():
        factories.make_member(email="a@example.com")
        factories.make_member(email="b@example.com", external_source="infusionsoft")
        factories.make_member(email="c@example.com")
        db.session.commit()
    response = api.post("/api/v1/members/bulk-update", json={
        "external_source": "infusionsoft",
        "emails": ["A@Example.com", "b@example.com", "nobody@example.com", "not-an-email"]})
    assert response.status_code == 200
    assert response.json == {"matched": 2, "changed": 1, "unchanged": 1, "not_found": ["nobody@example.com"],
                             "invalid": ["not-an-email"]}
    sources = {m["email"]: m["external_source"] for m in api.get("/api/v1/members").json}
    assert sources == {"a@example.com": "infusionsoft", "b@example.com": "infusionsoft", "c@example.com": None}


def test_bulk_update_by_ids_and_by_level(api, app):
    with app.app_context():
        level = factories.make_level(slug="gold")
        holder, other, lapsed = (factories.make_member() for _ in range(3))
        factories.grant(holder, level)
        revoked = factories.grant(lapsed, level)
        revoked.status = "revoked"
        db.session.commit()
        ids = {"holder": holder.id, "other": other.id, "level": level.id}
    by_level = api.post("/api/v1/members/bulk-update", json={"external_source": "Keap", "level_id": ids["level"]})
    assert by_level.json["matched"] == 1 and by_level.json["changed"] == 1
    assert api.get(f"/api/v1/members/{ids['holder']}").json["external_source"] == "Keap"

    by_ids = api.post("/api/v1/members/bulk-update",
                      json={"external_source": None, "member_ids": [ids["holder"], ids["other"], 999999]})
    assert by_ids.json == {"matched": 2, "changed": 1, "unchanged": 1, "not_found": [999999], "invalid": []}
    assert api.get(f"/api/v1/members/{ids['holder']}").json["external_source"] is None


def test_bulk_update_bad_input(api):
    none = api.post("/api/v1/members/bulk-update", json={"external_source": "keap"})
    assert none.status_code == 422 and none.json["code"] == "selector_required"
    two = api.post("/api/v1/members/bulk-update", json={"external_source": "keap", "level_id": 1, "emails": ["a@b.co"]})
    assert two.status_code == 422 and two.json["code"] == "selector_required"
    missing = api.post("/api/v1/members/bulk-update", json={"emails": ["a@example.com"]})
    assert missing.status_code == 422 and "external_source" in missing.json["errors"]
    level = api.post("/api/v1/members/bulk-update", json={"external_source": "keap", "level_id": 999})
    assert level.status_code == 404 and level.json["code"] == "level_not_found"
    extra = api.post("/api/v1/members/bulk-update", json={"external_source": "keap", "emails": ["a@b.co"], "x": 1})
    assert extra.status_code == 422 and "x" in extra.json["errors"]


def test_cli_updates_from_csv(app, runner, tmp_path):
    count = 2_000
    with app.app_context():
        now = factories.timeutil_now()
        db.session.execute(insert(Member), [
            {"email": f"m{i}@example.com", "name": "", "login_nonce": "", "created_at": now, "updated_at": now}
            for i in range(count)])
        db.session.commit()
    csv_path = tmp_path / "keap.csv"
    rows = [f"M{i}@Example.com" for i in range(0, count, 2)] + ["ghost@example.com", "bad address"]
    csv_path.write_text("name,email\n" + "".join(f"x,{email}\n" for email in rows))

    result = runner.invoke(args=["members", "set-external-source", str(csv_path), "--source", "infusionsoft"])
    assert result.exit_code == 0, result.output
    assert "1000 matched, 1000 changed" in result.output
    assert "not found: ghost@example.com" in result.output and "invalid: bad address" in result.output
    with app.app_context():
        sources = db.session.scalars(select(Member.external_source).where(Member.email.in_(
            ["m0@example.com", "m1@example.com"])).order_by(Member.email)).all()
    assert sources == ["infusionsoft", None]


def test_cli_needs_the_email_column(runner, tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("address\na@example.com\n")
    result = runner.invoke(args=["members", "set-external-source", str(path), "--source", "keap"])
    assert result.exit_code != 0 and "no 'email' column" in result.output
