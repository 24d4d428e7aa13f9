"""The "Invite to update card" panel on the admin member page (billing's update-by-invitation)."""

from __future__ import annotations

from sqlalchemy import select

from billing.models import CardInvitation, PaymentMethod
from extensions import db
from tests.factories import make_member


def _member_with_cards(app, cards: int) -> int:
    with app.app_context():
        member = make_member(email="ada@example.com")
        for n in range(cards):
            db.session.add(PaymentMethod(member_id=member.id, gateway="sandbox", token=f"sbx_pm_{n}", brand="visa",
                                         last4=f"424{n}", exp_month=12, exp_year=2034))
        db.session.commit()
        return member.id


def test_owner_invites_from_the_member_page_and_revokes(app, admin):
    member_id = _member_with_cards(app, 2)
    page = admin.get(f"/admin/members/{member_id}").text
    assert "Invite to update card" in page and "Visa ending 4241" in page and 'name="payment_method_id"' in page
    with app.app_context():
        second = db.session.scalar(select(PaymentMethod.id).where(PaymentMethod.last4 == "4241"))
    response = admin.post(f"/admin/members/{member_id}/invitations",
                          {"expires_in_hours": "24", "payment_method_id": str(second)})
    response.close()
    assert response.status_code == 302
    page = admin.get(response.headers["Location"]).text
    assert "Invitation sent to ada@example.com" in page and '<td class="state">sent</td>' in page
    with app.app_context():
        invitation = db.session.scalar(select(CardInvitation))
        assert invitation.payment_method_id == second and invitation.created_by_ref.startswith("owner:")
        invitation_id = invitation.id
    admin.post(f"/admin/invitations/{invitation_id}/revoke")
    assert '<td class="state">revoked</td>' in admin.get(f"/admin/members/{member_id}").text


def test_the_panel_shows_the_services_refusals(app, admin):
    member_id = _member_with_cards(app, 2)
    response = admin.post(f"/admin/members/{member_id}/invitations", {"expires_in_hours": "24"})
    assert "more than one payment method" in admin.get(response.headers["Location"]).text
    response = admin.post(f"/admin/members/{member_id}/invitations", {"expires_in_hours": "500"})
    assert "within 1 to 168 hours" in admin.get(response.headers["Location"]).text
    with app.app_context():
        assert db.session.scalar(select(CardInvitation.id)) is None


def test_the_panel_forms_need_the_csrf_token(app, admin):
    member_id = _member_with_cards(app, 0)
    response = admin.post(f"/admin/members/{member_id}/invitations", {"expires_in_hours": "24"}, csrf=False)
    assert response.status_code == 400
    with app.app_context():
        assert db.session.scalar(select(CardInvitation.id)) is None
