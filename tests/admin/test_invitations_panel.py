"""The "Invite to update card" panel on the admin member page (billing's update-by-invitation)."""

from __future__ import annotations

from sqlalchemy import select

from billing.models import CardInvitation, PaymentMethod
from extensions import db
from tests.factories import make_level, make_member


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


def test_no_invitation_is_offered_to_a_member_with_no_way_to_pay_us(app, admin):
    member_id = _member_with_cards(app, 0)  # a cart buyer: no card with us, no subscription of ours
    page = admin.get(f"/admin/members/{member_id}").text
    assert "there is no card to update" in page
    assert f'action="/admin/members/{member_id}/invitations"' not in page
    response = admin.post(f"/admin/members/{member_id}/invitations", {"expires_in_hours": "24"})
    assert "there is no card to update" in admin.get(response.headers["Location"]).text
    with app.app_context():
        assert db.session.scalar(select(CardInvitation.id)) is None


def test_a_member_with_a_subscription_of_ours_but_no_card_yet_is_offered_one(app, admin):
    from billing.models import Mandate, Plan

    member_id = _member_with_cards(app, 0)
    with app.app_context():
        level = make_level()
        plan = Plan(name="Pro monthly", level_id=level.id, amount=4900, currency="usd", interval_unit="month")
        db.session.add(plan)
        db.session.flush()
        db.session.add(Mandate(member_id=member_id, plan_id=plan.id, gateway="sandbox", amount=4900, currency="usd",
                               interval_unit="month", interval_count=1, authorisation_text="ok", status="past_due"))
        db.session.commit()
    page = admin.get(f"/admin/members/{member_id}").text
    assert f'action="/admin/members/{member_id}/invitations"' in page
    assert "No card on file: the member will add a first one." in page
