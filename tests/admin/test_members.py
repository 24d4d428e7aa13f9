"""Members, emails and the dashboard, through the admin pages."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from markupsafe import escape
from sqlalchemy import select

import timeutil
from emails import catalog
from emails.models import EmailStatus, OutboundEmail
from extensions import db
from fulfillment.models import WebhookEvent
from membership import services
from membership.models import Grant, GrantStatus
from tests import factories
from tests.helpers import delivered_text, login_link_in
from membership import grants


def test_search_members_by_email_or_name_with_pages(admin, app):
    with app.app_context():
        for n in range(60):
            factories.make_member(email=f"buyer{n:02d}@example.com", name=f"Buyer {n:02d}")
        factories.make_member(email="jane.doe@school.org", name="Jane Doe")
        factories.make_member(email="someone@else.org", name="Dorothy Janeway")
        db.session.commit()

    by_email = admin.get("/admin/members?q=JANE.DOE@").text
    assert "jane.doe@school.org" in by_email and "Dorothy" not in by_email
    by_name = admin.get("/admin/members?q=jane").text
    assert "jane.doe@school.org" in by_name and "someone@else.org" in by_name and "buyer" not in by_name
    assert "No member matches" in admin.get("/admin/members?q=100%25").text  # % is a literal, not a wildcard
    assert "No member matches" in admin.get("/admin/members?q=nobody-like-this").text

    first = admin.get("/admin/members").text
    assert "Page 1 of 2 (62 in all)" in first
    assert 'href="/admin/members?page=2"' in first
    second = admin.get("/admin/members?page=2").text
    assert "buyer00@example.com" in second and "buyer00@example.com" not in first
    paged_search = admin.get("/admin/members?q=buyer&page=2").text
    assert "Page 2 of 2 (60 in all)" in paged_search and 'href="/admin/members?page=1&amp;q=buyer"' in paged_search


def test_member_page_shows_grants_with_source_dates_status_and_emails(admin, app):
    with app.app_context():
        member = factories.make_member(email="jane@example.com", name="Jane Buyer")
        gold = factories.make_level(name="Gold")
        bonus = factories.make_level(name="Bonus")
        integration = factories.make_integration(name="Main cart")
        factories.grant(member, gold, source_kind="order", integration_id=integration.id, order_ref="23370556",
                        line_ref="product-12")
        revoked = factories.grant(member, bonus, note="comp")
        grants.revoke(db.session, [revoked], "refund requested")
        services.queue_welcome_email(db.session, member, [gold])
        db.session.commit()
        member_id = member.id
    page = admin.get(f"/admin/members/{member_id}").text
    assert "Jane Buyer" in page and "jane@example.com" in page
    assert "Main cart: order 23370556, product-12" in page
    assert "Added by hand" in page and "comp" in page
    assert "refund requested" in page and "revoked" in page
    assert "Welcome to Test Academy: your login link" in page
    assert admin.get("/admin/members/999").status_code == 404


def test_grant_extend_and_revoke_a_level(admin, app):
    with app.app_context():
        member = factories.make_member()
        gold = factories.make_level(name="Gold")
        db.session.commit()
        member_id, gold_id = member.id, gold.id

    response = admin.post(f"/admin/members/{member_id}/grants", {"level_id": str(gold_id), "ends_on": "2031-01-31",
                                                                 "note": "support ticket 42"})
    assert response.status_code == 302
    with app.app_context():
        grant = db.session.scalar(select(Grant))
        assert grant.ends_at == datetime(2031, 2, 1, tzinfo=UTC)
        assert grant.source_kind == "manual" and grant.note == "support ticket 42"
        grant_id = grant.id
    assert "now has “Gold”" in admin.get(f"/admin/members/{member_id}").text

    grant_page = admin.get(f"/admin/members/{member_id}/grants/{grant_id}").text
    assert 'value="2031-01-31"' in grant_page
    response = admin.post(f"/admin/members/{member_id}/grants/{grant_id}/extend", {"ends_on": "2032-06-30"})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(Grant, grant_id).ends_at == datetime(2032, 7, 1, tzinfo=UTC)
    admin.post(f"/admin/members/{member_id}/grants/{grant_id}/extend", {"ends_on": ""})
    with app.app_context():
        assert db.session.get(Grant, grant_id).ends_at is None

    missing_reason = admin.post(f"/admin/members/{member_id}/grants/{grant_id}/revoke", {"reason": " "})
    assert missing_reason.status_code == 422 and "Say why, for the member&#39;s record." in missing_reason.text
    response = admin.post(f"/admin/members/{member_id}/grants/{grant_id}/revoke", {"reason": "chargeback"})
    assert response.status_code == 302
    with app.app_context():
        grant = db.session.get(Grant, grant_id)
        assert grant.status == GrantStatus.REVOKED and grant.revoke_reason == "chargeback"
        assert services.levels_with_access(db.session, member_id) == []
    again = admin.post(f"/admin/members/{member_id}/grants/{grant_id}/revoke", {"reason": "twice"})
    assert again.status_code == 422 and "That grant is already revoked." in again.text
    extend_revoked = admin.post(f"/admin/members/{member_id}/grants/{grant_id}/extend", {"ends_on": "2040-01-01"})
    assert extend_revoked.status_code == 422 and "A revoked grant cannot be extended" in extend_revoked.text


def test_extending_an_expired_grant_opens_it_again(admin, app):
    with app.app_context():
        member = factories.make_member()
        gold = factories.make_level()
        grant = factories.grant(member, gold, starts_at=timeutil.now() - timedelta(days=40),
                                ends_at=timeutil.now() - timedelta(days=10))
        grant.status = GrantStatus.EXPIRED
        db.session.commit()
        ids = member.id, grant.id
    before_start = admin.post(f"/admin/members/{ids[0]}/grants/{ids[1]}/extend",
                              {"ends_on": (timeutil.now() - timedelta(days=50)).date().isoformat()})
    assert before_start.status_code == 422 and "The new end must be after the grant&#39;s start." in before_start.text
    future = (timeutil.now() + timedelta(days=30)).date().isoformat()
    assert admin.post(f"/admin/members/{ids[0]}/grants/{ids[1]}/extend", {"ends_on": future}).status_code == 302
    with app.app_context():
        grant = db.session.get(Grant, ids[1])
        assert grant.status == GrantStatus.ACTIVE and grant.gives_access()


def test_grant_form_validation(admin, app):
    with app.app_context():
        member = factories.make_member()
        db.session.commit()
        member_id = member.id
    response = admin.post(f"/admin/members/{member_id}/grants", {"level_id": "0", "ends_on": "31/01/2031"})
    assert response.status_code == 422
    assert "Choose a level." in response.text
    assert "Not a valid date value." in response.text
    assert admin.post("/admin/members/999/grants", {"level_id": "1"}).status_code == 404
    with app.app_context():
        assert db.session.scalar(select(Grant)) is None


def test_resend_the_welcome_email_with_a_fresh_link(admin, app):
    with app.app_context():
        member = factories.make_member(name="Jane")
        gold = factories.make_level(name="Gold")
        factories.grant(member, gold)
        services.queue_welcome_email(db.session, member, [gold])
        db.session.commit()
        member_id = member.id
    response = admin.post(f"/admin/members/{member_id}/welcome")
    assert response.status_code == 302
    response.close()  # delivery runs once the response is done (the embedded default)
    with app.app_context():
        welcomes = db.session.scalars(select(OutboundEmail).where(OutboundEmail.template == "welcome")
                                      .order_by(OutboundEmail.id)).all()
        assert len(welcomes) == 2
        assert welcomes[1].dedupe_key is None and welcomes[1].member_id == member_id
        assert "Gold" in welcomes[1].text_body and "[link made when sent: login/" in welcomes[1].text_body
        assert welcomes[1].status == EmailStatus.SENT  # delivered after the response (embedded default)
        first, again = (login_link_in(delivered_text(email.id)) for email in welcomes)
        assert again != first  # a new link, made when the copy went out
    assert "is on its way" in admin.get(f"/admin/members/{member_id}").text


def test_outbox_lists_status_and_error_and_resends_a_failed_email(admin, app):
    with app.app_context():
        member = factories.make_member(email="jane@example.com")
        row = OutboundEmail(recipient="jane@example.com", template="welcome", subject="Hello", text_body="Hi",
                            html_body="<p>Hi</p>", status=EmailStatus.FAILED, attempts=7,
                            last_error="SMTPRecipientsRefused: mailbox full", member_id=member.id)
        sent = OutboundEmail(recipient="bob@example.com", template="card_updated", subject="Sent one",
                             text_body="Hi", html_body="<p>Hi</p>", status=EmailStatus.SENT, sent_at=timeutil.now())
        invitation = OutboundEmail(recipient="jane@example.com", template="invitation", subject="Your card",
                                   text_body="[link removed]", html_body="<p>[link removed]</p>",
                                   status=EmailStatus.SENT, sent_at=timeutil.now(), member_id=member.id)
        db.session.add_all([row, sent, invitation])
        db.session.commit()
        email_id, sent_id, invitation_id = row.id, sent.id, invitation.id
    failed_only = admin.get("/admin/emails?status=failed").text
    assert "SMTPRecipientsRefused: mailbox full" in failed_only and "Sent one" not in failed_only
    assert "Sent one" in admin.get("/admin/emails?q=BOB@example.com").text
    detail = admin.get(f"/admin/emails/{email_id}").text
    assert "Resend now" in detail and 'sandbox srcdoc="&lt;p&gt;Hi&lt;/p&gt;"' in detail

    # A failed email is sent again as a copy; the original stays as the record of what happened.
    response = admin.post(f"/admin/emails/{email_id}/resend")
    assert response.status_code == 302
    response.close()
    with app.app_context():
        copy = db.session.scalar(select(OutboundEmail).where(OutboundEmail.resent_from_id == email_id))
        assert copy.status == EmailStatus.SENT and copy.recipient == "jane@example.com"
        assert db.session.get(OutboundEmail, email_id).status == EmailStatus.FAILED
    assert response.location == f"/admin/emails/{copy.id}"
    again = admin.post(f"/admin/emails/{sent_id}/resend")
    assert "is queued" in admin.get(again.location).text
    # An invitation's link was never stored: the page says so and points at a new invitation instead.
    refused = admin.post(f"/admin/emails/{invitation_id}/resend")
    assert refused.location == f"/admin/emails/{invitation_id}"
    assert "Send a new invitation instead" in admin.get(refused.location).text
    with app.app_context():
        assert db.session.scalar(select(OutboundEmail).where(OutboundEmail.resent_from_id == invitation_id)) is None
    assert admin.get("/admin/emails/999").status_code == 404


def test_every_email_template_has_a_preview(admin):
    index = admin.get("/admin/emails/templates").text
    for name, kind in catalog.CATALOG.items():
        assert f'href="/admin/emails/templates/{name}"' in index
        preview = admin.get(f"/admin/emails/templates/{name}")
        assert preview.status_code == 200
        assert str(escape(kind.description)) in preview.text
    assert "Welcome to Test Academy" in admin.get("/admin/emails/templates/welcome").text
    assert "Sam Example" in admin.get("/admin/emails/templates/welcome").text
    assert admin.get("/admin/emails/templates/nope").status_code == 404


def test_dashboard_figures_and_chart(admin, app):
    now = datetime(2026, 5, 20, 15, 0, tzinfo=UTC)
    with timeutil.frozen(now), app.app_context():
        gold = factories.make_level()
        today = factories.make_member(email="today@example.com")
        old = factories.make_member(email="old@example.com")
        old.created_at = now - timedelta(days=3)
        ancient = factories.make_member(email="ancient@example.com")
        ancient.created_at = now - timedelta(days=200)
        factories.grant(today, gold, source_kind="order", integration_id=None, order_ref="A", line_ref="product-1")
        factories.grant(today, gold, source_kind="order", integration_id=None, order_ref="A", line_ref="bump-1")
        factories.grant(old, gold, source_kind="order", integration_id=None, order_ref="B", line_ref="product-1")
        gone = factories.grant(old, gold)
        grants.revoke(db.session, [gone], "refund", at=now - timedelta(days=1))
        db.session.add(OutboundEmail(recipient="x@example.com", template="welcome", subject="s", text_body="t",
                                     html_body="h", status=EmailStatus.FAILED))
        # Orders today: processed order deliveries received today, each order once (A, and C of another cart).
        cart, other = factories.make_integration(), factories.make_integration(kind="generic")
        for integration, event_type, status, order_ref, received in (
                (cart, "order.success", "processed", "A", now - timedelta(hours=2)),
                (cart, "order.success", "duplicate", "A", now - timedelta(hours=1)),
                (cart, "order.refund", "processed", "A", now - timedelta(hours=1)),
                (cart, "order.success", "processed", "B", now - timedelta(days=1)),
                (cart, "order.success", "needs_attention", "D", now - timedelta(hours=1)),
                (cart, "order.success", "failed", "E", now - timedelta(days=4)),
                (other, "order.completed", "processed", "C", now - timedelta(hours=3))):
            db.session.add(WebhookEvent(integration_id=integration.id, provider=integration.kind,
                                        event_type=event_type, status=status, order_ref=order_ref, body="{}",
                                        received_at=received))
        db.session.commit()
    with timeutil.frozen(now):
        page = admin.get("/admin/").text
    figures = dict((label, int(value)) for value, label in
                   re.findall(r'<span class="figure">(\d+)</span>\s*([a-z ]+?)\s*<', page))
    assert figures == {"members": 3, "active grants": 3, "orders today": 2, "emails failed": 1,
                       "events needing attention": 2}
    assert 'href="/admin/events/needing-attention"' in page
    assert '<svg class="chart"' in page and "<polyline" in page
    assert "New members: 2 in total; Revocations: 1 in total" in page
    assert "<td>2026-05-20</td><td>1</td><td>0</td>" in page
    assert "<td>2026-05-19</td><td>0</td><td>1</td>" in page
    assert "<td>2026-05-17</td><td>1</td><td>0</td>" in page
    assert "2026-02-20" in page and "2026-02-19" not in page  # 90 days, today included


def test_other_domains_can_add_a_panel_to_the_member_page_and_a_dashboard_figure(admin, app):
    from jinja2 import ChoiceLoader, DictLoader

    from admin.pages import blueprint as pages

    app.jinja_env.loader = ChoiceLoader([DictLoader({"orders/_member.html": "<p>{{ panel.count }} orders of "
                                                                             "{{ member.email }}</p>"}),
                                         app.jinja_env.loader])
    section = pages.MemberSection("Orders", "orders/_member.html", lambda session, member: {"count": 3})
    figure = pages.DashboardCount("events needing attention", lambda session: 4)
    pages.MEMBER_SECTIONS.append(section)
    pages.DASHBOARD_COUNTS.append(figure)
    try:
        with app.app_context():
            member = factories.make_member(email="jane@example.com")
            db.session.commit()
            member_id = member.id
        page = admin.get(f"/admin/members/{member_id}").text
        assert ">Orders</h2>" in page and "<p>3 orders of jane@example.com</p>" in page
        assert re.search(r'<span class="figure">4</span>\s*events needing attention', admin.get("/admin/").text)
    finally:
        pages.MEMBER_SECTIONS.remove(section)
        pages.DASHBOARD_COUNTS.remove(figure)


def test_add_a_member_by_hand(admin, app):
    response = admin.post("/admin/members/new", {"email": "  Jane@Example.COM ", "name": "Jane"})
    assert response.status_code == 302
    page = admin.get(response.location).text
    assert "Member jane@example.com added." in page
    duplicate = admin.post("/admin/members/new", {"email": "jane@example.com", "name": "Other"})
    assert duplicate.status_code == 422 and "A member with that email already exists." in duplicate.text
    invalid = admin.post("/admin/members/new", {"email": "not-an-email"})
    assert invalid.status_code == 422 and "is not a usable email address." in invalid.text
    with app.app_context():
        assert db.session.scalar(select(OutboundEmail)) is None  # adding someone sends nothing


def test_member_tags_say_where_they_came_from_in_words(app):
    from admin.pages.member_panels import tag_origin
    from membership.tags import MemberTag

    def origin(applied_by, source):
        return tag_origin(MemberTag(applied_by=applied_by, source=source))

    assert origin("event", "order_completed order:1:50001:product-12") == "on order completed: order 50001, product-12"
    assert origin("event", "line_refunded refund:1:50001:bump-12") == "on line refunded: order 50001, bump-12"
    assert origin("event", "payment_failed sub:1:9") == "on payment failed"
    assert origin("event", "keap webhook:41") == "from a Keap campaign post"
    assert origin("owner", "owner admin") == "added by hand"
    assert origin("owner", "owner API") == "added by hand (API)"
    assert origin("automation", "rule #3") == "added by automation rule #3"
