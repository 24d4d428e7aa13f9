"""Fuzzing the four receivers (hypothesis, bounded: a few hundred cases, well under a minute).

Whatever arrives: the answer is JSON; input that is not authenticated never gets a 5xx; an authenticated
delivery gets a 5xx only as ``processing_failed`` with its stored event (the cart retries, the retry
replays it); every 2xx that names an ``event_id`` names a stored event.
"""

from __future__ import annotations

import json
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extensions import db
from fulfillment.models import WebhookEvent
from fulfillment.signatures import sign_generic
from tests.factories import make_course, make_integration, make_level, make_rule
from tests.fulfillment.helpers import order, to_form_pairs

SECRETS = {"thrivecart": "FUZZSECRET", "stripe": "whsec_fuzz_secret", "generic": "cgwh_fuzz_secret",
           "keap": "fuzz-keap-key"}
FORM = "application/x-www-form-urlencoded"
FUZZ = settings(max_examples=100, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                       HealthCheck.data_too_large])


@pytest.fixture
def receivers(app):
    """One integration per cart (outside any app context the requests could share)."""
    with app.app_context():
        level = make_level(slug="fuzz-pro", courses=[make_course(slug="fuzz-course")])
        ids = {}
        for kind, secret in SECRETS.items():
            integration = make_integration(kind=kind, secret=secret, accept_test_orders=True)
            make_rule(integration, "12", [level])
            ids[kind] = integration.id
        db.session.commit()
    return ids


# Text that has broken receivers before: NUL, lone surrogates, non-ASCII digits, huge numbers, brackets.
nasty_text = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["\x00", "\ud800", "²", "9" * 5000, "[", "]", "[]", "%00", "%C2%B2", "0", "-1", "null",
                     "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "~Contact.Email~", "a@b", "é"]),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), nasty_text)


def _containers(children):
    return st.one_of(st.lists(children, max_size=4), st.dictionaries(nasty_text, children, max_size=5))


json_trees = st.recursive(scalars, _containers, max_leaves=20)
form_keys = st.one_of(nasty_text, st.builds(lambda a, b: f"{a}[{b}]", nasty_text, nasty_text))


@st.composite
def bodies(draw, kind: str) -> tuple[bytes, str]:
    """A body and its content type: random bytes, a form, a JSON tree, or a real order with a field changed."""
    choice = draw(st.sampled_from(["bytes", "form", "json", "order", "generic"]))
    if choice == "bytes":
        return draw(st.binary(max_size=300)), draw(st.sampled_from(["application/json", "text/plain", ""]))
    if choice == "form":
        return _form(draw(st.lists(st.tuples(form_keys, nasty_text), max_size=8))), FORM
    if choice == "json":
        return json.dumps(draw(json_trees)).encode(), "application/json"
    if choice == "generic":
        tree = {"event": draw(st.sampled_from(["order.completed", "line.refunded", "subscription.cancelled",
                                               "payment.failed", "payment.succeeded", "subscription.paused"])),
                "id": draw(nasty_text), "order_id": draw(nasty_text), "email": draw(nasty_text),
                "subscription_id": draw(nasty_text), "invoice_id": draw(nasty_text),
                "period_end": draw(nasty_text), "name": draw(nasty_text),
                "items": [{"product_id": draw(nasty_text), "type": draw(st.sampled_from(["product", "bump", "x"]))}]}
        return json.dumps(tree).encode(), "application/json"
    tree = order(order_id=draw(st.text(min_size=1, max_size=10)), email="fuzz@example.com", items=["product-12"],
                 live=True)
    section = draw(st.sampled_from(["customer", "order", None]))
    target = tree[section] if section else tree
    target[draw(nasty_text)] = draw(nasty_text)
    tree["event"] = draw(st.sampled_from(["order.success", "order.refund", "order.subscription_cancelled",
                                          "order.rebill_failed", draw(nasty_text)]))
    tree["thrivecart_secret"] = draw(nasty_text)  # deliver() puts the real one in when the case is signed
    if draw(st.booleans()):
        return json.dumps(tree).encode(), "application/json"
    return _form(to_form_pairs(tree)), FORM


def _form(pairs: list[tuple[str, str]]) -> bytes:
    # Percent-encoded as a careless cart would, lone surrogates included (urlencode refuses them).
    def q(value: str) -> str:
        return quote(value.encode("utf-8", "surrogatepass"))

    return "&".join(f"{q(k)}={q(v)}" for k, v in pairs).encode()


def _with_thrivecart_secret(body: bytes, content_type: str) -> bytes:
    if content_type == "application/json":
        try:
            tree = json.loads(body)
        except ValueError:
            return body
        if isinstance(tree, dict):
            return json.dumps({**tree, "thrivecart_secret": SECRETS["thrivecart"]}).encode()
        return body
    return body + b"&" + urlencode({"thrivecart_secret": SECRETS["thrivecart"]}).encode()


def deliver(client, ids: dict, kind: str, body: bytes, content_type: str, signed: bool, header: str):
    """Post one fuzzed delivery; ``signed`` authenticates it the way that cart does, else ``header`` is sent."""
    url, headers = f"/webhooks/{kind}/{ids[kind]}", {}
    if kind == "thrivecart" and signed:
        body = _with_thrivecart_secret(body, content_type)
    elif kind == "keap" and signed:
        url += f"?key={SECRETS['keap']}"
    elif kind == "stripe":
        headers["Stripe-Signature"] = _signed_header(SECRETS["stripe"], body) if signed else header
    elif kind == "generic":
        headers["X-Coursegate-Signature"] = _signed_header(SECRETS["generic"], body) if signed else header
    return client.post(url, data=body, content_type=content_type, headers=headers)


def _signed_header(secret: str, body: bytes) -> str:
    # Stripe signs exactly as the generic format does: HMAC-SHA256 of "<t>.<raw body>".
    return sign_generic(secret, body)


def check(app, response, signed: bool) -> None:
    assert response.is_json, (response.status_code, response.get_data()[:200])
    answer = response.get_json()
    if not signed:
        assert response.status_code < 500, answer
    elif response.status_code >= 500:
        assert answer.get("code") == "processing_failed" and answer.get("event_id"), answer
    event_id = answer.get("event_id") if isinstance(answer, dict) else None
    if 200 <= response.status_code < 300 and event_id is not None:
        with app.app_context():
            assert db.session.get(WebhookEvent, event_id) is not None, answer
            db.session.remove()


# What a header can carry (latin-1, one line): servers refuse the rest before the app sees it.
def _one_latin1_line(value: str) -> str:
    return "".join(c for c in value if c not in "\r\n\x00" and ord(c) < 256)


header_text = st.one_of(nasty_text, st.builds(lambda t, v: f"t={t},v1={v}", nasty_text, nasty_text)).map(
    _one_latin1_line)


@pytest.mark.parametrize("kind", list(SECRETS))
def test_fuzzed_deliveries_get_json_and_stored_2xx(app, receivers, kind):
    client = app.test_client()

    @FUZZ
    @given(data=st.data(), signed=st.booleans(), header=header_text)
    def run(data, signed, header):
        body, content_type = data.draw(bodies(kind))
        check(app, deliver(client, receivers, kind, body, content_type, signed, header), signed)

    run()
