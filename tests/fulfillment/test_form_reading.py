"""A ThriveCart form is read once: for its fields and for the copy that is stored. The reading must be
exactly the standard library's, and the stored copy the pairs as the cart sent them, minus the secret."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from hypothesis import given, settings
from hypothesis import strategies as st

from fulfillment.cleaning import form_pairs
from tests.fulfillment.helpers import event, order, to_form_pairs

FORM = "application/x-www-form-urlencoded"
# Pieces that exercise every rule of the reading: separators, "+", valid and broken escapes, UTF-8 escapes.
PIECES = st.sampled_from(["a", "b", "=", "&", "+", "%5B", "%5d", "%2", "%zz", "%C3%A9", "é", "%", " ", ";", "%00"])


@settings(max_examples=500, deadline=None, database=None)
@given(st.lists(PIECES, max_size=16).map("".join))
def test_a_form_reads_as_parse_qsl_reads_it(body):
    assert [(pair.name, pair.value) for pair in form_pairs(body)] == parse_qsl(body, keep_blank_values=True)


def test_the_stored_form_is_the_pairs_as_sent_without_the_secret(client, shop):
    tree = order(order_id="FORM-1", email="Buyer+Tag@Example.com", items=["product-12"], live=True)
    del tree["thrivecart_secret"]
    sent = urlencode(to_form_pairs(tree))  # brackets and "@" escaped, "+" for spaces, as a cart sends them
    body = f"thrivecart_secret=TESTSECRET&{sent}&thrivecart%5Fsecret=TESTSECRET"
    response = client.post(f"/webhooks/thrivecart/{shop.id}", data=body, content_type=FORM)
    assert response.status_code == 200 and response.json["status"] == "processed", response.json
    assert event(response.json["event_id"]).body == sent


def test_a_form_with_the_secret_in_another_field_is_stored_redacted(client, shop):
    tree = order(order_id="FORM-2", email="buyer@example.com", items=["product-12"], live=True)
    body = urlencode(to_form_pairs(tree)) + "&note=it+is+TESTSECRET"
    response = client.post(f"/webhooks/thrivecart/{shop.id}", data=body, content_type=FORM)
    assert response.status_code == 200, response.json
    stored = event(response.json["event_id"]).body
    assert "TESTSECRET" not in stored
    assert dict(parse_qsl(stored))["note"] == "it is [redacted]"
    assert dict(parse_qsl(stored))["customer[email]"] == "buyer@example.com"
