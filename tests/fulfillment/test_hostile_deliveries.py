"""Deliveries an attacker or a broken cart sends: a signed one is never lost, none gets a 500, none leaks the secret.

Run on PostgreSQL too: NUL in text is refused only there.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path
from urllib.parse import urlencode

import pytest
import requests
from sqlalchemy import select, text

from extensions import db
from fulfillment.models import WebhookEvent
from fulfillment.signatures import sign_generic
from tests.conftest import ROOT
from tests.factories import make_integration, make_rule
from tests.fulfillment.helpers import encode, event, event_count, grants, members, order, to_form_pairs

GENERIC_SECRET = "cgwh_hostile_generic"
KEAP_KEY = "keap-hostile-key"


@pytest.fixture
def carts(shop, session):
    """Besides ``shop`` (ThriveCart): a generic and a Keap integration granting the same ``pro`` level."""
    generic = make_integration(kind="generic", secret=GENERIC_SECRET)
    make_rule(generic, "g-100", [shop.levels["pro"]])
    keap = make_integration(kind="keap", secret=KEAP_KEY)
    session.commit()
    shop.generic, shop.keap = generic.id, keap.id
    return shop


def post_generic(client, integration_id: int, body: bytes, *, secret: str = GENERIC_SECRET):
    return client.post(f"/webhooks/generic/{integration_id}", data=body, content_type="application/json",
                       headers={"X-Coursegate-Signature": sign_generic(secret, body)})


def generic_order(order_id: str, **fields) -> dict:
    return {"event": "order.completed", "id": f"evt-{order_id}", "order_id": order_id, "email": "buyer@example.com",
            "items": [{"product_id": "g-100"}], **fields}


def the_buyer_has_pro(email: str = "buyer@example.com") -> bool:
    db.session.expire_all()
    return any(g.member.email == email and g.level.slug == "pro" and g.status == "active" for g in grants())


# --- text the database cannot store ---------------------------------------------------------------------------

@pytest.mark.parametrize("encoding,bad", [("form", "\x00"), ("json", "\x00"), ("json", "\ud800")],
                         ids=["form-nul", "json-nul", "json-lone_surrogate"])
def test_thrivecart_text_the_database_cannot_store_is_cleaned(client, carts, encoding, bad):
    tree = order(order_id="NUL-1", email="buyer@example.com", items=["product-12"], live=True)
    tree["customer"]["name"] = f"a{bad}b"
    tree["customer"]["address"] = {"line1": f"1{bad} Main St"}
    body, content_type = encode(tree, encoding)  # JSON: the "\u0000" and "\ud800" escapes; form: %00
    response = client.post(f"/webhooks/thrivecart/{carts.id}", data=body, content_type=content_type)
    assert response.status_code == 200 and response.json["status"] == "processed", response.json
    [buyer] = members()
    assert buyer.name in ("ab", "a\ufffdb") and the_buyer_has_pro()
    assert "\x00" not in event(response.json["event_id"]).body


def test_generic_and_keap_text_is_cleaned(client, carts):
    body = json.dumps(generic_order("NUL-G", name="Ann\u0000 Lee\ud83d")).encode()
    response = post_generic(client, carts.generic, body)
    assert response.status_code == 200 and response.json["status"] == "processed", response.json
    assert the_buyer_has_pro() and members()[0].name == "Ann Lee\ufffd"

    response = client.post(f"/webhooks/keap/{carts.keap}?key={KEAP_KEY}",
                           data={"Email": "keap.buyer@example.com", "FirstName": "Ke\x00ap", "level": "pro"})
    assert response.status_code == 200 and response.json["status"] == "processed", response.json
    assert the_buyer_has_pro("keap.buyer@example.com")
    assert {m.email: m.name for m in members()}["keap.buyer@example.com"] == "Keap"


def test_a_delivery_that_failed_on_a_nul_byte_replays(api, carts, session):
    """Deliveries stored before the fix (failed on PostgreSQL, every replay too) go through when replayed."""
    tree = order(order_id="NUL-OLD", email="buyer@example.com", items=["product-12"], live=True)
    tree["customer"]["name"] = "a\x00b"
    body, content_type = encode(tree, "form")
    row = WebhookEvent(integration_id=carts.id, provider="thrivecart", event_type="order.success",
                       dedupe_key="old-nul", status="failed", email="buyer@example.com", order_ref="NUL-OLD",
                       content_type=content_type, body=body.decode(), headers={}, attempts=1,
                       last_error="DataError: PostgreSQL text fields cannot contain NUL (0x00) bytes")
    session.add(row)
    session.commit()
    response = api.post(f"/api/v1/events/{row.id}/replay")
    assert response.status_code == 200 and response.json["status"] == "processed", response.json
    assert the_buyer_has_pro() and members()[0].name == "ab"


# --- values out of range --------------------------------------------------------------------------------------

def test_a_period_end_before_year_one_in_utc_is_a_clear_422(client, carts):
    cancel = {"event": "subscription.cancelled", "subscription_id": "S-1", "period_end": "0001-01-01T00:00:00+14:00"}
    response = post_generic(client, carts.generic, json.dumps(cancel).encode())
    assert response.status_code == 422 and response.json["code"] == "invalid_payload"
    assert "period_end" in response.json["errors"]


def test_keap_days_of_thousands_of_digits_is_stored_for_attention(client, carts):
    response = client.post(f"/webhooks/keap/{carts.keap}?key={KEAP_KEY}",
                           data={"Email": "keap.buyer@example.com", "level": "pro", "days": "9" * 5000})
    assert response.status_code == 200 and response.json["status"] == "needs_attention"
    assert "days must be a whole number" in event(response.json["event_id"]).last_error


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-8-sig"])
def test_a_signed_json_body_in_another_unicode_encoding_is_processed(client, carts, encoding):
    body = json.dumps(generic_order("U16-1", name="Zoë")).encode(encoding)
    response = post_generic(client, carts.generic, body)
    assert response.status_code == 200 and response.json["status"] == "processed", response.json
    assert the_buyer_has_pro() and members()[0].name == "Zoë"
    assert json.loads(event(response.json["event_id"]).body)["order_id"] == "U16-1"


# --- unauthenticated input: a JSON 4xx, nothing stored ------------------------------------------------------------

FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize("body", ["0=1", "a[%C2%B2]=1", "a[" + "9" * 5000 + "]=1", "0[0]=1&1=2", "a[]=1&a[%C2%B2]=2"])
def test_odd_thrivecart_forms_are_a_json_4xx(client, carts, body):
    response = client.post(f"/webhooks/thrivecart/{carts.id}", data=body, content_type=FORM)
    # Without an event a form is ThriveCart's URL check (200, nothing stored); else a 400.
    assert response.is_json and response.status_code in (200, 400) and event_count() == 0
    assert response.status_code == 400 or response.json["event_id"] is None


@pytest.mark.parametrize("kind,header", [
    ("stripe", "t=1700000000,v1=\u00e9"),
    ("stripe", "t=" + "9" * 5000 + ",v1=abc"),
    ("generic", "t=" + "9" * 5000 + ",v1=abc"),
    ("generic", "t=1700000000,v1=\u00e9"),
    ("generic", "t=" + "1" * 10 + "," + ",".join(["v1=abc"] * 10_000)),
    ("stripe", "t=" + "1" * 10 + "," + ",".join(["v1="] * 10_000)),
])
def test_odd_signature_headers_are_a_json_401(client, session, kind, header):
    integration = make_integration(kind=kind, secret="whsec_hostile" if kind == "stripe" else GENERIC_SECRET)
    session.commit()
    response = client.post(f"/webhooks/{kind}/{integration.id}", data=b"{}", content_type="application/json",
                           headers={"Stripe-Signature" if kind == "stripe" else "X-Coursegate-Signature": header})
    assert response.status_code == 401 and response.json["code"] in ("invalid_signature", "signature_expired")
    assert event_count() == 0


# --- the secret is removed by value --------------------------------------------------------------------------------

@pytest.mark.parametrize("variant", ["encoded_name", "in_another_field", "json_escaped", "in_a_header"])
def test_no_stored_payload_or_header_holds_the_secret(api, client, carts, variant, caplog):
    caplog.set_level(logging.DEBUG)
    tree = order(order_id="SEC-1", email="buyer@example.com", items=["product-12"], live=True)
    del tree["thrivecart_secret"]
    pairs = urlencode(to_form_pairs(tree))
    headers = {}
    if variant == "encoded_name":
        body, content_type = f"{pairs}&thrivecart%5Fsecret=TESTSECRET", FORM
    elif variant == "in_another_field":
        body, content_type = f"{pairs}&thrivecart_secret=TESTSECRET&note=my+secret+is+TESTSECRET", FORM
    elif variant == "json_escaped":
        body = json.dumps({**tree, "thrivecart_secret": "TESTSECRET", "copy": "x"}).replace(
            '"x"', '"\\u0054ESTSECRET"')
        content_type = "application/json"
    else:
        body, content_type = f"{pairs}&thrivecart_secret=TESTSECRET", FORM
        headers = {"X-Forwarded-Secretword": "TESTSECRET", "X-Debug": "key=TESTSECRET"}
    response = client.post(f"/webhooks/thrivecart/{carts.id}", data=body, content_type=content_type,
                           headers=headers)
    assert response.status_code == 200 and response.json["status"] == "processed", response.json
    detail = api.get(f"/api/v1/events/{response.json['event_id']}")
    assert detail.status_code == 200 and "TESTSECRET" not in detail.get_data(as_text=True)
    raw = db.session.execute(text("SELECT body, headers FROM webhook_events")).all()
    assert raw and all("TESTSECRET" not in f"{row.body}{row.headers}" for row in raw)
    assert "TESTSECRET" not in caplog.text


# --- body size, however the body is framed ---------------------------------------------------------------------------

def _chunked(data: bytes, size: int = 64 * 1024):
    for start in range(0, len(data), size):
        yield data[start:start + size]


@pytest.mark.parametrize("megabytes", [1.1, 2.0, 2.2])
def test_an_over_limit_chunked_body_is_413_through_a_real_server(live_server, carts, megabytes):
    tree = order(order_id="BIG-1", email="buyer@example.com", items=["product-12"], live=True)
    body, _ = encode(tree, "form")
    body += b"&padding=" + b"x" * int(megabytes * 1_000_000)
    response = requests.post(f"{live_server}/webhooks/thrivecart/{carts.id}", data=_chunked(body),
                             headers={"Content-Type": FORM}, timeout=30)
    assert response.status_code == 413 and response.json()["code"] == "payload_too_large"
    assert event_count() == 0


def test_a_chunked_delivery_under_the_limit_is_processed_through_a_real_server(live_server, carts):
    tree = order(order_id="CHUNK-1", email="buyer@example.com", items=["product-12"], live=True)
    body, _ = encode(tree, "form")
    body += b"&padding=" + b"x" * 500_000
    response = requests.post(f"{live_server}/webhooks/thrivecart/{carts.id}", data=_chunked(body),
                             headers={"Content-Type": FORM}, timeout=30)
    assert response.status_code == 200 and response.json()["status"] == "processed"
    assert the_buyer_has_pro()
    assert db.session.scalar(select(WebhookEvent.id)) == response.json()["event_id"]


# --- the same through gunicorn with the production settings ---------------------------------------------------------

GUNICORN_PORT = 5611  # this worktree's range
BIN = Path(sys.executable).parent


@pytest.fixture
def gunicorn_url(app_config, carts, tmp_path):
    from tests.production.processes import _answers, _spawn, service_env, stop, wait_until

    env = service_env(DATABASE_URL=app_config["SQLALCHEMY_DATABASE_URI"], SECRET_KEY=app_config["SECRET_KEY"],
                      COURSEGATE_NO_JOB_LOOP="1", COURSEGATE_MAIL_DIR=str(tmp_path / "mail"))
    proc = _spawn([str(BIN / "gunicorn"), "-c", str(ROOT / "gunicorn.conf.py"), "--bind",
                   f"127.0.0.1:{GUNICORN_PORT}", "--workers", "1"], env, tmp_path / "gunicorn.log")
    url = f"http://127.0.0.1:{GUNICORN_PORT}"
    try:
        wait_until(lambda: _answers(url + "/healthz"), timeout=30, what="gunicorn", proc=proc)
        yield url
    finally:
        stop(proc)


def test_through_gunicorn_headers_and_chunked_bodies_get_json(gunicorn_url, carts):
    tree = order(order_id="GUNI-1", email="buyer@example.com", items=["product-12"], live=True)
    body, _ = encode(tree, "form")
    url = f"{gunicorn_url}/webhooks/thrivecart/{carts.id}"

    too_large = requests.post(url, data=_chunked(body + b"&padding=" + b"x" * 2_200_000),
                              headers={"Content-Type": FORM}, timeout=30)
    assert too_large.status_code == 413 and too_large.json()["code"] == "payload_too_large"
    assert event_count() == 0
    ok = requests.post(url, data=_chunked(body), headers={"Content-Type": FORM}, timeout=30)
    assert ok.status_code == 200 and ok.json()["status"] == "processed"
    db.session.expire_all()
    assert db.session.get(WebhookEvent, ok.json()["event_id"]) is not None

    generic = f"{gunicorn_url}/webhooks/generic/{carts.generic}"
    for values, status, code in (([""] * 10_000, 401, "invalid_signature"),  # 40 KB: the app's own cap
                                 (["0" * 64] * 10_000, 431, "request_header_fields_too_large")):  # 680 KB
        header = "t=1700000000," + ",".join(f"v1={value}" for value in values)
        answer = requests.post(generic, data=b"{}", headers={"Content-Type": "application/json",
                                                             "X-Coursegate-Signature": header}, timeout=30)
        assert answer.status_code == status and answer.headers["Content-Type"] == "application/json"
        assert answer.json()["code"] == code
    assert event_count() == 1
