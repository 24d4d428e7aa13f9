"""The dashboard's getting-started checklist and where its figures lead."""

from __future__ import annotations

import re

from extensions import db
from fulfillment.models import WebhookEvent
from tests import factories


def _steps(html: str) -> dict[str, tuple[str, str]]:
    """Step label -> (state, link) as the checklist shows them."""
    found = re.findall(r'<span class="badge [a-z]+">(Done|To do)</span>\s*<a href="([^"]+)">([^<]+)</a>', html)
    return {label: (state, link) for state, link, label in found}


def test_an_empty_install_lists_the_five_steps_to_do(admin):
    page = admin.get("/admin/").text
    assert "Getting started" in page and "0 of 5 done." in page
    assert _steps(page) == {
        "Publish a course": ("To do", "/admin/courses"),
        "Make a level": ("To do", "/admin/levels"),
        "Connect a cart": ("To do", "/admin/integrations/new"),
        "Map a product": ("To do", "/admin/integrations/new"),
        "Send a test delivery": ("To do", "/admin/integrations/new"),
    }


def test_each_step_turns_done_and_the_list_goes_when_all_are(admin, app):
    with app.app_context():
        factories.make_course(status="draft")
        db.session.commit()
    assert _steps(admin.get("/admin/").text)["Publish a course"][0] == "To do"  # a draft is not published
    with app.app_context():
        course = factories.make_course(status="published")
        level = factories.make_level(courses=[course])
        integration = factories.make_integration()
        db.session.commit()
        integration_id = integration.id
    page = admin.get("/admin/").text
    assert "3 of 5 done." in page
    steps = _steps(page)
    assert steps["Connect a cart"] == ("Done", "/admin/integrations")
    assert steps["Map a product"] == ("To do", f"/admin/integrations/{integration_id}#products-heading")
    assert steps["Send a test delivery"] == ("To do", f"/admin/integrations/{integration_id}#deliveries-heading")

    with app.app_context():
        factories.make_rule(db.session.get(type(integration), integration_id), "12", [db.session.merge(level)])
        db.session.commit()
    assert "4 of 5 done." in admin.get("/admin/").text
    sent = admin.post(f"/admin/integrations/{integration_id}/test-delivery")
    assert sent.status_code == 302
    page = admin.get("/admin/").text
    assert "Getting started" not in page


def test_every_figure_links_to_what_it_counts(admin, app):
    page = admin.get("/admin/").text
    for label, link in (("members", "/admin/members"), ("active grants", "/admin/levels"),
                        ("orders today", "/admin/events?orders=today"), ("emails failed", "/admin/emails?status=failed"),
                        ("events needing attention", "/admin/events/needing-attention")):
        assert re.search(rf'<a href="{re.escape(link)}"><span class="figure">\d+</span> {label}</a>', page), label


def test_the_active_grants_figure_adds_up_on_the_levels_page(admin, app):
    with app.app_context():
        gold, silver = factories.make_level(name="Gold"), factories.make_level(name="Silver")
        for n in range(3):
            factories.grant(factories.make_member(), gold)
        factories.grant(factories.make_member(), silver)
        db.session.commit()
    assert re.search(r'<span class="figure">4</span> active grants', admin.get("/admin/").text)
    levels = admin.get("/admin/levels").text
    assert re.search(r">Gold</a></td>.*?<td>3</td>\s*</tr>", levels, re.S)
    assert re.search(r">Silver</a></td>.*?<td>1</td>\s*</tr>", levels, re.S)


def test_orders_today_shows_the_deliveries_it_counts(admin, app):
    with app.app_context():
        cart = factories.make_integration()
        for event_type, order_ref in (("order.success", "A"), ("order.refund", "B")):
            db.session.add(WebhookEvent(integration_id=cart.id, provider="thrivecart", event_type=event_type,
                                        status="processed", order_ref=order_ref, body="{}"))
        db.session.commit()
    page = admin.get("/admin/events?orders=today").text
    assert "Showing the orders processed today" in page
    assert "order.success" in page and "order.refund" not in page
