"""Billing's hooks for the account page: its section, and the link a past-due grant's notice points to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from billing import account_links
from extensions import db
from membership.models import Member
from tests import factories
from tests.billing.helpers import grant_of, invoices_of, make_plan, set_card, sign_up, tick

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


def test_account_section_only_for_members_who_subscribed(app, client, app_ctx):
    import timeutil

    with timeutil.frozen(T0):
        mandate = sign_up(client, make_plan().id, "ada@example.com")
    stranger = factories.make_member(email="eve@example.com")
    db.session.commit()
    with app.test_request_context("/account"):
        html = account_links.account_section(db.session, db.session.get(Member, mandate.member_id))
        assert "Gold monthly" in html and "Cancel" in html
        assert account_links.account_section(db.session, stranger) is None


def test_card_update_url_points_a_past_due_grant_at_its_invoice(client, app_ctx):
    import timeutil

    with timeutil.frozen(T0) as clock:
        mandate = sign_up(client, make_plan().id, "ada@example.com")
        assert account_links.card_update_url(db.session, grant_of(mandate)) is None  # nothing to pay
        set_card(mandate, "decline")
        renewal = invoices_of(mandate)[0].period_end
        clock[0] = renewal - timedelta(hours=48)
        tick()
        clock[0] = renewal
        tick()
        url = account_links.card_update_url(db.session, grant_of(mandate))
        assert url.startswith(f"http://coursegate.test/invoices/{invoices_of(mandate)[1].id}?t=")
        manual = factories.grant(db.session.get(Member, mandate.member_id), factories.make_level())
        assert account_links.card_update_url(db.session, manual) is None
