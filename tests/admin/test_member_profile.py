"""Editing a member's profile in the admin: the API's checks, a clear taken-email message, the history."""

from __future__ import annotations

from markupsafe import escape

from extensions import db
from membership.models import Member, MemberChange
from tests import factories


def _profile(member_id: int, **changes) -> dict:
    with db.session.no_autoflush:
        member = db.session.get(Member, member_id)
        base = {"email": member.email, "name": member.name, "phone": member.phone or "",
                "external_source": member.external_source or ""}
    return base | changes


def test_owner_edits_a_profile_and_the_change_is_in_the_history(admin, app):
    with app.app_context():
        member = factories.make_member(email="jane@example.com", name="Jane")
        member.keap_contact_id = "4321"
        db.session.commit()
        member_id = member.id

        page = admin.get(f"/admin/members/{member_id}").text
        assert 'value="jane@example.com"' in page and "Linked to Keap contact 4321" in page

        saved = admin.post(f"/admin/members/{member_id}/profile",
                           _profile(member_id, email="Jane.New@Example.com", external_source="infusionsoft",
                                    phone="+14155550123"), follow_redirects=True)
        assert saved.status_code == 200
        assert "Profile saved: email, phone, external source." in saved.text
        assert ("Email changed from jane@example.com to jane.new@example.com. Keap contact 4321 kept."
                in saved.text)
        db.session.expire_all()
        member = db.session.get(Member, member_id)
        assert (member.email, member.external_source, member.phone, member.keap_contact_id) == (
            "jane.new@example.com", "infusionsoft", "+14155550123", "4321")
        history = saved.text.split("Profile changes of", 1)[1]
        assert "jane@example.com" in history and "Keap contact 4321 kept." in history and "owner admin" in history

        again = admin.post(f"/admin/members/{member_id}/profile", _profile(member_id), follow_redirects=True)
        assert "Nothing to save" in again.text
        assert db.session.query(MemberChange).filter_by(member_id=member_id).count() == 3


def test_the_form_refuses_what_the_api_refuses(admin, app, api):
    with app.app_context():
        member = factories.make_member(email="jane@example.com")
        other = factories.make_member(email="taken@example.com")
        db.session.commit()
        member_id, other_id = member.id, other.id

        taken = admin.post(f"/admin/members/{member_id}/profile", _profile(member_id, email="TAKEN@example.com"))
        assert taken.status_code == 422
        assert f"Another member already uses {escape('taken@example.com')}" in taken.text
        assert f'href="/admin/members/{other_id}"' in taken.text
        assert api.patch(f"/api/v1/members/{member_id}", json={"email": "taken@example.com"}).json["code"] == \
            "duplicate_email"

        bad_phone = admin.post(f"/admin/members/{member_id}/profile", _profile(member_id, phone="0415 555"))
        assert bad_phone.status_code == 422 and "String does not match expected pattern." in bad_phone.text
        assert api.patch(f"/api/v1/members/{member_id}", json={"phone": "0415 555"}).status_code == 422

        bad_email = admin.post(f"/admin/members/{member_id}/profile", _profile(member_id, email="not-an-email"))
        assert bad_email.status_code == 422 and "is not a usable email address." in bad_email.text

        db.session.expire_all()
        assert db.session.get(Member, member_id).email == "jane@example.com"
        assert db.session.query(MemberChange).count() == 0


def test_an_api_change_is_recorded_too(api, app):
    with app.app_context():
        member = factories.make_member(email="jane@example.com", name="Jane")
        db.session.commit()
        assert api.patch(f"/api/v1/members/{member.id}", json={"name": "Jane Doe"}).status_code == 200
        row = db.session.query(MemberChange).one()
        assert (row.field, row.old_value, row.new_value, row.changed_by) == ("name", "Jane", "Jane Doe", "owner API")
