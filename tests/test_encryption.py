"""Secrets at rest: a database dump alone forges no delivery; SECRET_KEY rotates through SECRET_KEY_FALLBACKS."""

from __future__ import annotations

import json

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from extensions import db
from fulfillment.signatures import sign_generic
from tests.factories import make_course
from tests.fulfillment.helpers import event_count, order, post_tc

TC_SECRET = "thrivecart-secret-word-42"
GENERIC_SECRET = "generic-secret-value-4242"
STRIPE_KEY = "rk_live_restricted_key_777"
HOOK_SECRET = "cgwhsec_outgoing_secret_9999"


def raw_values() -> str:
    """Everything a dump of the secret-holding tables would show."""
    rows = db.session.execute(text("SELECT * FROM integrations")).all()
    rows += db.session.execute(text("SELECT * FROM webhook_endpoints")).all()
    return json.dumps([[str(value) for value in row] for row in rows])


@pytest.fixture
def configured(api, session):
    make_course(slug="enc-course", status="published")
    session.commit()
    ids = {}
    for kind, fields in (("thrivecart", {"secret": TC_SECRET}), ("generic", {"secret": GENERIC_SECRET}),
                         ("stripe", {"secret": "whsec_enc_secret_1", "api_key": STRIPE_KEY})):
        created = api.post("/api/v1/integrations", json={"kind": kind, "name": kind, **fields})
        assert created.status_code == 201, created.json
        ids[kind] = created.json["id"]
    hook = api.post("/api/v1/webhook-endpoints", json={"url": "https://hooks.example.com/in", "events": ["*"],
                                                       "secret": HOOK_SECRET})
    assert hook.status_code == 201, hook.json
    return ids


def test_a_dump_holds_no_secret_and_its_values_forge_nothing(client, configured):
    dump = raw_values()
    for secret in (TC_SECRET, GENERIC_SECRET, STRIPE_KEY, HOOK_SECRET, "whsec_enc_secret_1"):
        assert secret not in dump
    stored = db.session.execute(text("SELECT secret FROM integrations WHERE kind = 'thrivecart'")).scalar()
    forged = order(order_id="F-1", email="forger@example.com", items=["product-12"], thrivecart_secret=stored)
    assert post_tc(client, configured["thrivecart"], forged).status_code == 401
    # The cart's real secret still verifies: the app reads the column through the key.
    genuine = order(order_id="G-1", email="buyer@example.com", items=["product-12"], thrivecart_secret=TC_SECRET)
    assert post_tc(client, configured["thrivecart"], genuine).status_code == 200 and event_count() == 1


def _post_generic(client, integration_id: int):
    body = json.dumps({"event": "payment.failed", "subscription_id": "S-1", "invoice_id": "I-1"}).encode()
    return client.post(f"/webhooks/generic/{integration_id}", data=body, content_type="application/json",
                       headers={"X-Coursegate-Signature": sign_generic(GENERIC_SECRET, body)})


def test_rotating_secret_key_through_the_fallbacks(app_config, configured, make_app):
    old = app_config["SECRET_KEY"]
    before = raw_values()

    # A new key alone cannot read what the old one wrote: a clear 503, not a wrong answer.
    lost = make_app(SECRET_KEY="the-new-secret-key")
    answer = _post_generic(lost.test_client(), configured["generic"])
    assert answer.status_code == 503 and answer.json["code"] == "secrets_unreadable"

    rotating = make_app(SECRET_KEY="the-new-secret-key", SECRET_KEY_FALLBACKS=[old])
    assert _post_generic(rotating.test_client(), configured["generic"]).status_code == 200
    with rotating.app_context():  # the test's own app context would otherwise be the command's
        result = rotating.test_cli_runner().invoke(args=["secrets", "rotate"])
        assert result.exit_code == 0 and "Re-encrypted 5 stored secret(s)" in result.output
        assert raw_values() != before and GENERIC_SECRET not in raw_values()

    rotated = make_app(SECRET_KEY="the-new-secret-key", SECRET_KEY_FALLBACKS=[])
    answer = _post_generic(rotated.test_client(), configured["generic"])
    assert answer.status_code == 200 and answer.json["status"] in ("processed", "duplicate")


def test_rotate_refuses_values_no_key_can_read(app_config, configured, make_app):
    lost = make_app(SECRET_KEY="yet-another-key")
    with lost.app_context():
        result = lost.test_cli_runner().invoke(args=["secrets", "rotate"])
    assert result.exit_code != 0 and "SECRET_KEY_FALLBACKS" in result.output


def test_the_migration_encrypts_existing_plain_values_and_the_downgrade_decrypts(make_app, app_config, tmp_path):
    migrating = make_app({**app_config, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'migrate.sqlite3'}"})
    with migrating.app_context():
        upgrade(revision="0800")
        with db.engine.begin() as conn:
            conn.execute(text("INSERT INTO integrations (kind, name, secret, previous_secret, api_key, "
                              "accept_test_orders, cancel_access, grace_days, created_at, updated_at) VALUES "
                              "('stripe', 'Old', 'whsec_plain', NULL, 'rk_plain', 0, 'period_end', 7, "
                              "'2026-01-01', '2026-01-01')"))
            conn.execute(text("INSERT INTO webhook_endpoints (url, description, secret, events, enabled, "
                              "created_at, updated_at) VALUES ('https://x.example', '', 'cgwhsec_plain', '[]', 1, "
                              "'2026-01-01', '2026-01-01')"))
        upgrade()
        with db.engine.connect() as conn:
            secret, api_key = conn.execute(text("SELECT secret, api_key FROM integrations")).one()
            assert "plain" not in secret + api_key
            assert "plain" not in conn.execute(text("SELECT secret FROM webhook_endpoints")).scalar()
        from fulfillment.models import Integration

        integration = db.session.scalars(db.select(Integration)).one()
        assert (integration.secret, integration.api_key, integration.previous_secret) == ("whsec_plain", "rk_plain",
                                                                                           None)
        db.session.remove()
        downgrade(revision="0800")
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT secret, api_key FROM integrations")).one() == ("whsec_plain", "rk_plain")
            assert conn.execute(text("SELECT secret FROM webhook_endpoints")).scalar() == "cgwhsec_plain"
        db.engine.dispose()
