from __future__ import annotations

from types import SimpleNamespace

import pytest

from tests.factories import make_course, make_integration, make_level, make_rule


@pytest.fixture
def shop(session):
    """A ThriveCart integration with a rule for every item of the test orders.

    product 12 -> pro (pricing option 83322 -> pro-yearly), bump 12 -> bonus, upsell 3 -> coaching,
    downsell 5 -> lite, product 7 -> basic, bump 7 -> bonus, product 17 -> monthly (30 days), product 2 -> starter.
    """
    course = make_course(slug="the-course")
    names = ["pro", "pro-yearly", "bonus", "coaching", "lite", "basic", "starter"]
    levels = {name: make_level(name=name.title(), slug=name, courses=[course]) for name in names}
    levels["monthly"] = make_level(name="Monthly", slug="monthly", courses=[course], duration_days=30)
    integration = make_integration(kind="thrivecart", secret="TESTSECRET", accept_test_orders=True,
                                   card_update_url="https://shop.example.com/hub")
    make_rule(integration, "12", [levels["pro"]])
    make_rule(integration, "12", [levels["pro-yearly"]], pricing_option_id="83322")
    make_rule(integration, "12", [levels["bonus"]], item_type="bump")
    make_rule(integration, "3", [levels["coaching"]], item_type="upsell")
    make_rule(integration, "5", [levels["lite"]], item_type="downsell")
    make_rule(integration, "7", [levels["basic"]])
    make_rule(integration, "7", [levels["bonus"]], item_type="bump")
    make_rule(integration, "17", [levels["monthly"]])
    make_rule(integration, "2", [levels["starter"]])
    session.commit()
    return SimpleNamespace(integration=integration, id=integration.id, levels=levels, course=course)
