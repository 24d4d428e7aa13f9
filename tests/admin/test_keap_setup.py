"""A Keap integration through the admin: created with a generated key, its page shows what to paste into Keap."""

from __future__ import annotations

import html

from sqlalchemy import select

from extensions import db
from fulfillment.models import Integration
from tests import factories


def test_keap_integration_page_shows_the_post_url_and_pairs(admin, app):
    with app.app_context():
        factories.make_level(slug="gold")
        db.session.commit()
    created = admin.post("/admin/integrations/new", {"kind": "keap", "name": "Keap app", "secret": "",
                                                     "cancel_access": "period_end", "grace_days": "7"})
    assert created.status_code == 200, created.text
    with app.app_context():
        integration = db.session.scalar(select(Integration))
        key, integration_id = integration.secret, integration.id
    assert integration.kind == "keap" and key.startswith("cgkp_") and "Send HTTP Post" in created.text

    page = html.unescape(admin.get(f"/admin/integrations/{integration_id}").text)
    assert f"http://coursegate.test/webhooks/keap/{integration_id}?key={key}" in page
    for text in ("~Contact.Email~", "~Contact.Id~", "<code>level</code>", "<code>gold</code>", "<code>revoke</code>",
                 "<code>untag</code>"):
        assert text in page
    assert "Configure this product" not in page  # Keap maps by level slug, not by product
