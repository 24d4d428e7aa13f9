"""Email addresses are checked by email-validator (syntax only) wherever one can become a member."""

from __future__ import annotations

import io

import pytest

from fulfillment.models import WebhookEvent
from membership import transfer
from membership.emails import normalise_email
from membership.errors import InvalidEmail
from tests.fulfillment.helpers import members
from tests.fulfillment.test_generic import ORDER, generic_shop, post  # noqa: F401  (fixture)
from tests.helpers import csrf_token

# Control characters in the domain, which the old pattern (one "@", a dot, no spaces) let through.
GARBLED = "þ¢@v\u0087.\b°o"
UNUSABLE = [GARBLED, "two@@example.com", "a@b@example.com", "jane@localhost", "jane@exa mple.com",
            "jane@-example.com", "jane@example..com", "Jane <jane@example.com>", "jane@example.invalid"]


@pytest.mark.parametrize("raw", UNUSABLE)
def test_unusable_addresses_are_refused_with_the_reason(raw):
    with pytest.raises(InvalidEmail) as refused:
        normalise_email(raw)
    assert "is not a usable email address" in refused.value.message


def test_usable_addresses_are_kept_trimmed_and_lower_case():
    assert normalise_email("  Jane.Doe+course@Example.COM ") == "jane.doe+course@example.com"
    assert normalise_email("jörg@Bücher.de") == "jörg@bücher.de"


def test_the_api_refuses_the_garbled_address_on_create_patch_and_bulk(api, app):
    created = api.post("/api/v1/members", json={"email": GARBLED})
    assert created.status_code == 422 and created.json["code"] == "invalid_email"
    member_id = api.post("/api/v1/members", json={"email": "ok@example.com"}).json["id"]
    patched = api.patch(f"/api/v1/members/{member_id}", json={"email": GARBLED})
    assert patched.status_code == 422 and patched.json["code"] == "invalid_email"
    bulk = api.post("/api/v1/members/bulk-update", json={"external_source": "keap",
                                                         "emails": [GARBLED, "ok@example.com"]})
    assert bulk.status_code == 200 and bulk.json["invalid"] == [GARBLED]
    assert [m["email"] for m in api.get("/api/v1/members").json] == ["ok@example.com"]


def test_a_csv_import_rejects_the_row(session):
    rows = transfer.read_csv(io.StringIO(f"email,name\n{GARBLED},Bad\nfine@example.com,Fine\n"))
    report = transfer.ImportReport()
    good = transfer.check_rows(session, rows, report)
    assert [row.email for row in good] == ["fine@example.com"]
    assert [(r.line, r.reason) for r in report.rejected] == [(2, "invalid email")]


def test_the_login_form_says_the_address_is_not_one(client):
    response = client.post("/login", data={"email": GARBLED, "csrf_token": csrf_token(client)})
    assert response.status_code == 422
    assert "does not look like an email address" in response.get_data(as_text=True)


def test_a_delivery_with_a_garbled_buyer_email_is_kept_and_needs_attention(client, generic_shop, session):  # noqa: F811
    response = post(client, generic_shop.id, {**ORDER, "email": GARBLED})
    assert response.status_code == 200 and response.json["status"] == "needs_attention"
    stored = session.get(WebhookEvent, response.json["event_id"])
    assert stored is not None and "is not a usable email address" in stored.last_error
    assert members() == []
