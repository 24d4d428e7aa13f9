"""fire() skips the rule and endpoint queries when nothing listens (automations/active.py); an owner's change
must still take effect at once: in the same transaction, and in every other process from its next transaction."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from automations import rules
from automations.triggers import fire
from extensions import db
from tests import factories
from tests.automations.helpers import make_rule, tag_names


def test_a_rule_saved_by_another_process_runs_at_the_next_transaction(session):
    first, second = factories.make_member(), factories.make_member()
    fire(session, "order_completed", member=first, event_key="order:1:a", product_id="12")
    session.commit()
    assert "bought" not in tag_names(first)

    with Session(db.engine) as elsewhere:  # another worker: its own connection and transaction
        rules.create_rule(elsewhere, {"name": "Tag buyers", "trigger": "order_completed",
                                      "actions": [{"type": "add_tag", "tag": "bought"}]})
        elsewhere.commit()

    fire(session, "order_completed", member=second, event_key="order:2:a", product_id="12")
    session.commit()
    assert "bought" in tag_names(second)


def test_a_rule_disabled_by_another_process_stops_at_the_next_transaction(session):
    rule = make_rule("order_completed", [{"type": "add_tag", "tag": "bought"}])
    first, second = factories.make_member(), factories.make_member()
    session.commit()
    fire(session, "order_completed", member=first, event_key="order:1:a", product_id="12")
    session.commit()
    assert "bought" in tag_names(first)

    with Session(db.engine) as elsewhere:
        rules.update_rule(elsewhere, rules.get_rule(elsewhere, rule.id), {"enabled": False})
        elsewhere.commit()

    fire(session, "order_completed", member=second, event_key="order:2:a", product_id="12")
    session.commit()
    assert "bought" not in tag_names(second)


def test_a_rule_saved_in_the_same_transaction_runs_at_once(session):
    first, second = factories.make_member(), factories.make_member()
    fire(session, "order_completed", member=first, event_key="order:1:a", product_id="12")
    make_rule("order_completed", [{"type": "add_tag", "tag": "bought"}])
    fire(session, "order_completed", member=second, event_key="order:2:a", product_id="12")
    session.commit()
    assert "bought" not in tag_names(first)
    assert "bought" in tag_names(second)


def test_an_endpoint_saved_in_the_same_transaction_gets_the_next_event(session):
    from automations import webhooks
    from automations.models import WebhookDelivery

    member = factories.make_member()
    fire(session, "order_completed", member=member, event_key="order:1:a", product_id="12")
    webhooks.create_endpoint(session, {"url": "https://crm.example/hooks", "events": ["order_completed"]})
    fire(session, "order_completed", member=member, event_key="order:2:a", product_id="12")
    session.commit()
    assert list(session.scalars(select(WebhookDelivery.event_type))) == ["order_completed"]
