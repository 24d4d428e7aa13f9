"""Courses, levels, integrations, the product mapping screen and API keys, through the admin pages."""

from __future__ import annotations

import re

from sqlalchemy import select

from extensions import db
from fulfillment import rules
from fulfillment.errors import NoPublishedCourse
from fulfillment.models import FulfillmentRule, Integration
from membership.models import Course, Level
from tests import factories


def test_create_a_course_then_publish_it(admin, app):
    response = admin.post("/admin/courses/new", {"title": "Pro Course", "slug": "pro-course", "status": "draft"})
    assert response.status_code == 302
    listing = admin.get("/admin/courses").text
    assert "Pro Course" in listing and "draft" in listing
    with app.app_context():
        course_id = db.session.scalar(select(Course.id))
    assert admin.post(f"/admin/courses/{course_id}/publish").status_code == 302
    with app.app_context():
        assert db.session.get(Course, course_id).status == "published"
    assert "is published" in admin.get("/admin/courses").text


def test_course_form_explains_what_is_wrong(admin, app):
    response = admin.post("/admin/courses/new", {"title": "", "slug": "Not A Slug"})
    assert response.status_code == 422
    assert "This field is required." in response.text
    assert "Use lower-case letters, digits and single hyphens" in response.text
    assert 'aria-invalid="true"' in response.text

    admin.post("/admin/courses/new", {"title": "One", "slug": "taken"})
    duplicate = admin.post("/admin/courses/new", {"title": "Two", "slug": "taken"})
    assert duplicate.status_code == 422
    assert "A course with the slug &#39;taken&#39; already exists." in duplicate.text
    with app.app_context():
        assert db.session.scalar(select(Course.title).where(Course.slug == "taken")) == "One"


def test_edit_a_course(admin, app):
    with app.app_context():
        course = factories.make_course(title="Old", slug="old", status="draft")
        db.session.commit()
        course_id = course.id
    page = admin.get(f"/admin/courses/{course_id}")
    assert 'value="Old"' in page.text
    response = admin.post(f"/admin/courses/{course_id}", {"title": "New title", "slug": "new-slug",
                                                          "status": "published"})
    assert response.status_code == 302
    with app.app_context():
        course = db.session.get(Course, course_id)
        assert (course.title, course.slug, course.status) == ("New title", "new-slug", "published")
    assert admin.get("/admin/courses/999").status_code == 404


def test_create_and_edit_a_level_with_its_courses(admin, app):
    with app.app_context():
        one, two = factories.make_course(title="One"), factories.make_course(title="Two")
        db.session.commit()
        one_id, two_id = one.id, two.id
    response = admin.post("/admin/levels/new", {"name": "Gold", "slug": "gold", "course_ids": [str(one_id)],
                                                "duration_days": "30"})
    assert response.status_code == 302
    with app.app_context():
        level = db.session.scalar(select(Level))
        assert [c.id for c in level.courses] == [one_id] and level.duration_days == 30
        level_id = level.id
    form = admin.get(f"/admin/levels/{level_id}").text
    assert re.search(rf'value="{one_id}"[^>]*checked|checked[^>]*value="{one_id}"', form)
    response = admin.post(f"/admin/levels/{level_id}", {"name": "Gold", "slug": "gold",
                                                        "course_ids": [str(one_id), str(two_id)],
                                                        "duration_days": ""})
    assert response.status_code == 302
    with app.app_context():
        level = db.session.get(Level, level_id)
        assert [c.id for c in level.courses] == [one_id, two_id] and level.duration_days is None


def test_level_form_rejects_bad_duration_and_unknown_courses(admin):
    response = admin.post("/admin/levels/new", {"name": "Gold", "slug": "gold", "duration_days": "0",
                                                "course_ids": ["12345"]})
    assert response.status_code == 422
    assert "Number must be between 1 and 36500." in response.text
    assert "&#39;12345&#39; is not a valid choice for this field." in response.text


INTEGRATION = {"kind": "thrivecart", "name": "My ThriveCart", "secret": "TESTSECRET", "cancel_access": "period_end",
               "grace_days": "7"}


def test_an_integration_needs_a_published_course_with_the_api_message(admin, app, api):
    with app.app_context():
        factories.make_course(status="draft")
        db.session.commit()
    response = admin.post("/admin/integrations/new", INTEGRATION)
    assert response.status_code == 422
    assert NoPublishedCourse.message in response.text
    api_answer = api.post("/api/v1/integrations", json={"kind": "thrivecart", "name": "x", "secret": "TESTSECRET"})
    assert api_answer.json["message"] == NoPublishedCourse.message
    with app.app_context():
        assert db.session.scalar(select(Integration)) is None


def test_create_an_integration_shows_the_webhook_url_and_secret_once(admin, app):
    with app.app_context():
        factories.make_course()
        db.session.commit()
    created = admin.post("/admin/integrations/new", INTEGRATION)
    assert created.status_code == 200
    with app.app_context():
        integration = db.session.scalar(select(Integration))
        url = f"http://coursegate.test/webhooks/thrivecart/{integration.id}"
        assert integration.secret == "TESTSECRET" and integration.accept_test_orders is False
    assert url in created.text and "TESTSECRET" in created.text
    page = admin.get(f"/admin/integrations/{integration.id}")
    assert url in page.text
    assert "TESTSECRET" not in page.text  # write-only from now on
    assert "TESTSECRET" not in admin.get("/admin/integrations").text


def test_a_generic_cart_gets_a_generated_secret_shown_once(admin, app):
    with app.app_context():
        factories.make_course()
        db.session.commit()
    created = admin.post("/admin/integrations/new", {**INTEGRATION, "kind": "generic", "secret": ""})
    assert created.status_code == 200
    with app.app_context():
        secret = db.session.scalar(select(Integration.secret))
    assert secret.startswith("cgwh_") and secret in created.text


def test_integration_form_validation(admin, app):
    with app.app_context():
        factories.make_course()
        db.session.commit()
    response = admin.post("/admin/integrations/new", {**INTEGRATION, "name": "", "secret": "", "grace_days": "120",
                                                      "card_update_url": "not a url"})
    assert response.status_code == 422
    assert "This field is required." in response.text
    assert "Enter the secret the cart signs its webhooks with." in response.text
    assert "Number must be between 0 and 90" in response.text
    assert "Invalid URL" in response.text


def test_edit_integration_settings_keeps_the_secret_unless_replaced(admin, app):
    with app.app_context():
        factories.make_course()
        integration = factories.make_integration(secret="ORIGINALSECRET")
        db.session.commit()
        integration_id = integration.id
    response = admin.post(f"/admin/integrations/{integration_id}", {
        "name": "Renamed", "secret": "", "accept_test_orders": "y", "cancel_access": "immediately",
        "grace_days": "3", "card_update_url": "https://cart.example/hub"})
    assert response.status_code == 302
    with app.app_context():
        integration = db.session.get(Integration, integration_id)
        assert (integration.name, integration.secret, integration.accept_test_orders, integration.cancel_access,
                integration.grace_days, integration.card_update_url) == (
            "Renamed", "ORIGINALSECRET", True, "immediately", 3, "https://cart.example/hub")
    admin.post(f"/admin/integrations/{integration_id}", {"name": "Renamed", "secret": "REPLACEDSECRET",
                                                         "cancel_access": "immediately", "grace_days": "3"})
    with app.app_context():
        assert db.session.get(Integration, integration_id).secret == "REPLACEDSECRET"


def test_editing_settings_is_refused_without_a_published_course(admin, app):
    with app.app_context():
        integration = factories.make_integration()
        db.session.commit()
        integration_id = integration.id
    response = admin.post(f"/admin/integrations/{integration_id}", {"name": "Renamed", "cancel_access": "period_end",
                                                                    "grace_days": "7"})
    assert response.status_code == 422
    assert NoPublishedCourse.message in response.text


def _mapping_setup(app):
    with app.app_context():
        course = factories.make_course()
        gold = factories.make_level(name="Gold", courses=[course])
        bonus = factories.make_level(name="Bonus", courses=[course])
        vip = factories.make_level(name="VIP", courses=[course])
        integration = factories.make_integration()
        db.session.commit()
        return integration.id, gold.id, bonus.id, vip.id


def _levels(app, integration_id, item_type, product_id, option=None):
    with app.app_context():
        return [level.name for level in rules.levels_for_item(db.session, integration_id, item_type, product_id,
                                                              option)]


def test_configure_a_product_with_a_bump_and_an_upsell(admin, app):
    integration_id, gold, bonus, vip = _mapping_setup(app)
    pick = admin.get(f"/admin/integrations/{integration_id}/product?product_id=12")
    assert pick.status_code == 302 and pick.location.endswith(f"/admin/integrations/{integration_id}/products/12")
    screen = admin.get(pick.location)
    assert screen.status_code == 200 and "Product 12" in screen.text
    # One control for every level list: checkboxes, never a Ctrl-click multi-select.
    assert "<select" not in screen.text.split('name="csrf_token"', 1)[1]
    assert 'name="bump_level_ids" type="checkbox"' in screen.text

    response = admin.post(f"/admin/integrations/{integration_id}/products/12", {
        "mode": "all", "level_ids": [str(gold)], "bump_level_ids": [str(bonus)], "options-0-ref": "",
    })
    assert response.status_code == 302
    assert _levels(app, integration_id, "product", "12", "any-option") == ["Gold"]
    assert _levels(app, integration_id, "bump", "12") == ["Bonus"]
    saved = admin.get(response.location).text
    assert "Product 12 saved: product 12 unlocks Gold; the order bump of product 12 unlocks Bonus." in saved

    # Upsells belong to the integration: their own page, linked from the product's and the integration's.
    assert f"/admin/integrations/{integration_id}/funnel" in saved
    funnel = f"/admin/integrations/{integration_id}/funnel"
    response = admin.post(funnel, {"upsells-0-ref": "3", "upsells-0-level_ids": [str(vip)], "upsells-1-ref": "",
                                   "downsells-0-ref": ""})
    assert response.status_code == 302
    assert _levels(app, integration_id, "upsell", "3") == ["VIP"]
    page = admin.get(funnel).text
    assert "Upsells and downsells saved: upsell 3 unlocks VIP." in page
    assert re.search(r'<input[^>]*name="upsells-0-ref"[^>]*value="3"', page)
    assert re.search(r'<input checked id="upsells-0-level_ids-\d" name="upsells-0-level_ids" type="checkbox" '
                     rf'value="{vip}"', page)
    # Empty rows to add more without a save first.
    assert 'name="upsells-3-ref"' in page and 'name="downsells-2-ref"' in page
    overview = admin.get(f"/admin/integrations/{integration_id}").text
    assert "Product 12" in overview and "bump: Bonus" in overview
    assert "Set up upsells and downsells" in overview


def test_a_level_per_pricing_option_replaces_the_every_option_rule(admin, app):
    integration_id, gold, bonus, vip = _mapping_setup(app)
    path = f"/admin/integrations/{integration_id}/products/12"
    admin.post(path, {"mode": "all", "level_ids": [str(gold)]})
    response = admin.post(path, {"mode": "per_option", "level_ids": [str(gold)],
                                 "options-0-ref": "83322", "options-0-level_ids": [str(vip)],
                                 "options-1-ref": "83323", "options-1-level_ids": [str(gold), str(bonus)]})
    assert response.status_code == 302
    assert _levels(app, integration_id, "product", "12", "83322") == ["VIP"]
    assert sorted(_levels(app, integration_id, "product", "12", "83323")) == ["Bonus", "Gold"]
    assert _levels(app, integration_id, "product", "12", "other") == []
    with app.app_context():
        assert db.session.scalar(select(FulfillmentRule).where(FulfillmentRule.pricing_option_id.is_(None))) is None

    screen = admin.get(path).text
    assert "product 12 no longer unlocks Gold" in screen  # the replaced rule is said, not hidden
    assert 'value="83322"' in screen and 'value="83323"' in screen
    assert re.search(r'value="per_option"[^>]*checked|checked[^>]*value="per_option"', screen)


def test_clearing_an_upsell_row_removes_its_rule_and_says_so(admin, app):
    integration_id, gold, bonus, vip = _mapping_setup(app)
    path = f"/admin/integrations/{integration_id}/funnel"
    admin.post(path, {"upsells-0-ref": "3", "upsells-0-level_ids": [str(vip)]})
    response = admin.post(path, {"upsells-0-ref": ""}, follow_redirects=True)
    assert _levels(app, integration_id, "upsell", "3") == []
    assert "upsell 3 no longer unlocks VIP" in response.text


def test_emptying_a_mapped_product_is_refused_and_keeps_its_rule(admin, app):
    integration_id, gold, bonus, vip = _mapping_setup(app)
    path = f"/admin/integrations/{integration_id}/products/77"
    admin.post(path, {"mode": "all", "level_ids": [str(gold)]}, follow_redirects=True)
    response = admin.post(path, {"mode": "all"})  # the only level unticked
    assert response.status_code == 422
    assert "Nothing saved: product 77 would unlock no level." in response.text
    assert "Product 77 saved" not in response.text
    assert "Stop fulfilling this product" in response.text
    assert _levels(app, integration_id, "product", "77") == ["Gold"]


def test_saving_a_new_product_with_nothing_ticked_is_refused(admin, app):
    integration_id, gold, bonus, vip = _mapping_setup(app)
    response = admin.post(f"/admin/integrations/{integration_id}/products/77", {"mode": "all",
                                                                               "bump_level_ids": [str(bonus)]})
    assert response.status_code == 422
    assert "Nothing saved: tick at least one level that buying product 77 unlocks." in response.text
    with app.app_context():
        assert db.session.scalar(select(FulfillmentRule)) is None


def test_stop_fulfilling_a_product_asks_then_says_what_it_removed(admin, app):
    integration_id, gold, bonus, vip = _mapping_setup(app)
    path = f"/admin/integrations/{integration_id}/products/12"
    admin.post(path, {"mode": "all", "level_ids": [str(gold)], "bump_level_ids": [str(bonus)]})
    confirm = admin.get(path + "/stop")
    assert confirm.status_code == 200
    assert "Stop fulfilling Product 12?" in confirm.text
    assert "product 12: unlocks Gold" in confirm.text and "bump 12: unlocks Bonus" in confirm.text
    assert _levels(app, integration_id, "product", "12") == ["Gold"]  # asking removes nothing
    done = admin.post(path + "/stop", follow_redirects=True)
    assert ("Product 12 is no longer fulfilled: product 12 no longer unlocks Gold; the order bump of product 12 "
            "no longer unlocks Bonus.") in done.text
    assert _levels(app, integration_id, "product", "12") == [] and _levels(app, integration_id, "bump", "12") == []
    again = admin.post(path + "/stop", follow_redirects=True)
    assert "Product 12 has no rule to remove." in again.text


def test_products_are_named_from_what_the_cart_sent(admin, app, client):
    from tests.admin.orders import form_body, order_with_bump_and_upsell

    integration_id, gold, bonus, vip = _mapping_setup(app)
    with app.app_context():
        from fulfillment.models import Integration
        db.session.get(Integration, integration_id).secret = "TESTSECRET"
        db.session.commit()
    body, content_type = form_body(order_with_bump_and_upsell())
    client.post(f"/webhooks/thrivecart/{integration_id}", data=body, content_type=content_type)
    overview = admin.get(f"/admin/integrations/{integration_id}").text
    assert "Sold through this cart but not mapped yet" in overview
    assert "Mobile &amp; Universal App Pro (product 12)" in overview
    screen = admin.get(f"/admin/integrations/{integration_id}/products/12").text
    assert "<h1>Mobile &amp; Universal App Pro (product 12): what a purchase unlocks</h1>" in screen
    assert "named “Bonus Pack”" in screen
    funnel = admin.post(f"/admin/integrations/{integration_id}/funnel",
                        {"upsells-0-ref": "3", "upsells-0-level_ids": [str(vip)]}, follow_redirects=True)
    assert "VIP Coaching" in funnel.text  # the upsell's name, under its id


def test_integration_settings_show_only_the_fields_its_cart_uses(admin, app):
    with app.app_context():
        factories.make_course()
        thrivecart = factories.make_integration(kind="thrivecart")
        stripe = factories.make_integration(kind="stripe")
        db.session.commit()
        ids = thrivecart.id, stripe.id
    assert "Stripe restricted API key" not in admin.get(f"/admin/integrations/{ids[0]}").text
    assert "ThriveCart secret word" in admin.get(f"/admin/integrations/{ids[0]}").text
    assert "Stripe restricted API key" in admin.get(f"/admin/integrations/{ids[1]}").text
    new = admin.get("/admin/integrations/new").text
    assert 'data-kinds="stripe"' in new  # admin.js hides it unless Stripe is chosen


def test_mapping_screen_validation(admin, app):
    integration_id, gold, bonus, vip = _mapping_setup(app)
    path = f"/admin/integrations/{integration_id}/products/12"
    response = admin.post(path, {"mode": "per_option", "options-0-ref": "83322",
                                 "options-1-ref": "", "options-1-level_ids": [str(vip)],
                                 "options-2-ref": "5", "options-2-level_ids": [str(vip)],
                                 "options-3-ref": "5", "options-3-level_ids": [str(gold)]})
    assert response.status_code == 422
    assert "Tick at least one level, or clear the id to remove this row." in response.text
    assert "Enter the id this row is for." in response.text
    assert "Each id once, please: 5 appears more than once." in response.text
    with app.app_context():
        assert db.session.scalar(select(FulfillmentRule)) is None
    empty = admin.post(path, {"mode": "per_option"})
    assert "Add at least one pricing option" in empty.text


def test_mapping_of_an_unknown_integration_is_404(admin):
    assert admin.get("/admin/integrations/999/products/12").status_code == 404
    assert admin.get("/admin/integrations/999").status_code == 404


def test_api_key_is_shown_once_works_and_can_be_revoked(admin, client, app):
    created = admin.post("/admin/api-keys", {"name": "my site"})
    assert created.status_code == 200
    key = re.search(r'value="(cg_[^"]+)"', created.text).group(1)
    headers = {"Authorization": f"Bearer {key}"}
    assert client.get("/api/v1/courses", headers=headers).status_code == 200
    listing = admin.get("/admin/api-keys").text
    assert "my site" in listing and key[:10] in listing and key not in listing

    from membership.models import ApiKey

    with app.app_context():
        key_id = db.session.scalar(select(ApiKey.id).where(ApiKey.name == "my site"))
    assert admin.post(f"/admin/api-keys/{key_id}/revoke").status_code == 302
    assert client.get("/api/v1/courses", headers=headers).status_code == 401
    assert "revoked" in admin.get("/admin/api-keys").text


def test_api_key_needs_a_name(admin):
    response = admin.post("/admin/api-keys", {"name": "  "})
    assert response.status_code == 422
    assert "This field is required." in response.text
