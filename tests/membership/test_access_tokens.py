"""POST /api/v1/me/access-token and /.well-known/jwks.json: a front end verifies the member's token with a
standard JWT library and the published keys; a revoked member's next token no longer lists the course."""

from __future__ import annotations

import os
import stat
import threading
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import select

import config
import timeutil
from membership import access_tokens, grants, services
from membership.models import Grant
from tests import factories
from tests.helpers import _CSRF, committed, follow_link

AUDIENCE = "coursegate:member-access"


@pytest.fixture
def world(app):
    """Ada holds Gold (Painting, and a draft course) for life and Silver (Sculpture) from a cart order."""
    with committed(app) as session:
        painting = factories.make_course(slug="painting")
        draft = factories.make_course(slug="secret-draft", status="draft")
        sculpture = factories.make_course(slug="sculpture")
        gold = factories.make_level(slug="gold", courses=[painting, draft])
        silver = factories.make_level(slug="silver", courses=[sculpture])
        factories.make_level(slug="bronze", courses=[factories.make_course(slug="pottery")])
        ada = factories.make_member(email="ada@example.com")
        factories.grant(ada, gold)
        order = factories.grant(ada, silver, source_kind="order", order_ref="o-1", line_ref="product-1")
        session.flush()
        ids = {"ada": ada.id, "silver_grant": order.id}
    return ids


def signed_in(app, http, base: str, member_id: int):
    """Sign in the way a member does: follow an emailed login link (the session cookie it sets)."""
    with app.app_context():
        from extensions import db

        path = "/login/" + services.login_url(db.session.get(services.Member, member_id)).split("/login/", 1)[1]
    page = http.get(base + path, allow_redirects=False)  # the link's page: one Sign in button
    token = _CSRF.search(page.text).group(1)
    response = http.post(base + path, data={"csrf_token": token}, headers={"Referer": base + path},
                         allow_redirects=False)
    assert response.status_code in (302, 303)
    return http


def new_token(http, base: str) -> dict:
    response = http.post(f"{base}/api/v1/me/access-token")
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "private, no-store"
    return response.json()


def verify(base: str, token: str) -> dict:
    """What a front end does: the key named by the token's kid, from the published JWKS, checks the token."""
    signing_key = jwt.PyJWKClient(f"{base}/.well-known/jwks.json").get_signing_key_from_jwt(token)
    return jwt.decode(token, signing_key, algorithms=["EdDSA", "RS256", "ES256"], audience=AUDIENCE,
                      issuer="http://coursegate.test")


def test_a_front_end_verifies_the_token_with_the_published_key(app, world, live_server):
    with requests.Session() as http:
        body = new_token(signed_in(app, http, live_server, world["ada"]), live_server)
    claims = verify(live_server, body["token"])
    assert claims["sub"] == str(world["ada"]) and claims["email"] == "ada@example.com"
    assert claims["levels"] == ["gold", "silver"]
    assert claims["courses"] == ["painting", "sculpture"]  # never the draft, never another level's course
    assert claims["exp"] - claims["iat"] == 300 == body["expires_in"]
    assert body["expires_at"] == datetime.fromtimestamp(claims["exp"], tz=UTC).isoformat()
    assert jwt.get_unverified_header(body["token"])["alg"] == "EdDSA"
    keys = requests.get(f"{live_server}/.well-known/jwks.json", timeout=10)
    assert keys.headers["Cache-Control"] == "public, max-age=300"
    assert [(k["kty"], k["crv"], k["use"]) for k in keys.json()["keys"]] == [("OKP", "Ed25519", "sig")]


def test_a_revoked_members_next_token_lacks_the_course(app, world, live_server):
    with requests.Session() as http:
        signed_in(app, http, live_server, world["ada"])
        before = new_token(http, live_server)["token"]
        with committed(app) as session:  # the cart's refund of the order
            grants.revoke(session, [session.get(Grant, world["silver_grant"])], "refund of order o-1")
        after = verify(live_server, new_token(http, live_server)["token"])
    assert after["courses"] == ["painting"] and after["levels"] == ["gold"]
    # The trade-off the README states: a token issued before the revocation still says what it said, until it expires.
    assert "sculpture" in verify(live_server, before)["courses"]


def test_the_token_ends_when_the_first_level_ends(app, client, world):
    with committed(app) as session:
        grant = session.get(Grant, world["silver_grant"])
        grant.ends_at = timeutil.now() + timedelta(seconds=90)
    signed_in_client(app, client, world["ada"])
    body = client.post("/api/v1/me/access-token").json
    assert 88 <= body["expires_in"] <= 90
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == body["expires_in"]


def test_a_member_without_access_gets_a_token_with_nothing_in_it(app, client, world):
    with committed(app) as session:
        for grant in session.scalars(select(Grant)):
            grants.revoke(session, [grant], "refund")
    signed_in_client(app, client, world["ada"])
    body = client.post("/api/v1/me/access-token").json
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["levels"] == [] and claims["courses"] == [] and body["expires_in"] == 300


def test_without_a_member_session_there_is_no_token(client, api, world):
    response = client.post("/api/v1/me/access-token")
    assert response.status_code == 401 and response.json["code"] == "not_signed_in"
    assert api.post("/api/v1/me/access-token").status_code == 401  # an owner key is not a member


def signed_in_client(app, client, member_id: int):
    with app.app_context():
        from extensions import db

        url = services.login_url(db.session.get(services.Member, member_id))
    assert follow_link(client, "/login/" + url.split("/login/", 1)[1]).status_code == 302
    return client


# --- keys: configured, rotated, generated ----------------------------------------------------------------

def pem(key, *, public: bool = False) -> bytes:
    if public:
        return key.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def test_a_rotation_keeps_tokens_signed_with_the_former_key_valid(make_app, world, tmp_path):
    old_key, new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048), ec.generate_private_key(
        ec.SECP256R1())
    (tmp_path / "old.pem").write_bytes(pem(old_key))
    before = make_app(MEMBER_TOKEN_KEY=str(tmp_path / "old.pem"))  # a path to a PEM file
    old_token = signed_in_client(before, before.test_client(), world["ada"]).post("/api/v1/me/access-token").json

    # The new key signs (given inline); the old one, its public half is enough, is still published.
    after = make_app(MEMBER_TOKEN_KEY=pem(new_key).decode(), MEMBER_TOKEN_KEY_FALLBACKS=pem(old_key, public=True))
    client = after.test_client()
    new_token = signed_in_client(after, client, world["ada"]).post("/api/v1/me/access-token").json
    published = client.get("/.well-known/jwks.json").json["keys"]
    assert [(k["kty"], k["alg"]) for k in published] == [("EC", "ES256"), ("RSA", "RS256")]
    by_kid = {k["kid"]: jwt.PyJWK(k) for k in published}
    for body, alg in ((old_token, "RS256"), (new_token, "ES256")):
        header = jwt.get_unverified_header(body["token"])
        assert header["alg"] == alg
        claims = jwt.decode(body["token"], by_kid[header["kid"]], algorithms=[alg], audience=AUDIENCE)
        assert claims["courses"] == ["painting", "sculpture"]
    # Without the fallback the old token no longer verifies: its kid is not published.
    later = make_app(MEMBER_TOKEN_KEY=pem(new_key).decode())
    kids = {k["kid"] for k in later.test_client().get("/.well-known/jwks.json").json["keys"]}
    assert jwt.get_unverified_header(old_token["token"])["kid"] not in kids


def test_the_key_id_is_the_rfc_7638_thumbprint():
    # RFC 7638 section 3.1's example key and its thumbprint.
    n = ("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3"
         "oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHz"
         "u6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8"
         "awapJzKnqDKgw")
    public = rsa.RSAPublicNumbers(65537, int.from_bytes(jwt.utils.base64url_decode(n), "big")).public_key()
    key = access_tokens._signing_key(pem_public(public), need_private=False)
    assert key.kid == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def pem_public(public) -> bytes:
    return public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def test_the_embedded_default_generates_one_key_and_keeps_it(tmp_path):
    found: list[bytes] = []
    threads = [threading.Thread(target=lambda: found.append(config.instance_signing_key(str(tmp_path))))
               for _ in range(8)]  # gunicorn workers starting together
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1 and found[0].startswith(b"-----BEGIN PRIVATE KEY-----")
    path = tmp_path / "member_token_key.pem"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["member_token_key.pem"]  # no temporary left behind
    assert config.instance_signing_key(str(tmp_path)) == found[0]


def test_an_app_without_a_configured_key_uses_the_instance_key(app, tmp_path):
    app.instance_path = str(tmp_path)
    first = access_tokens.load_keys(app).current
    assert (tmp_path / "member_token_key.pem").exists()
    assert access_tokens.load_keys(app).current.kid == first.kid and first.algorithm == "EdDSA"


@pytest.mark.parametrize("setting, message", [
    ({"MEMBER_TOKEN_MAX_AGE": "five minutes"}, "whole number"),
    ({"MEMBER_TOKEN_MAX_AGE": 0}, "positive"),
    ({"MEMBER_TOKEN_KEY": "/no/such/key.pem"}, "cannot read"),
    ({"MEMBER_TOKEN_KEY": "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"}, "private key"),
])
def test_a_bad_setting_stops_the_app_at_start(app_config, setting, message):
    from app import create_app

    with pytest.raises(config.ConfigError, match=message):
        create_app({**app_config, **setting})


def test_the_lifetime_is_configurable(make_app, world):
    other = make_app(MEMBER_TOKEN_MAX_AGE=60)
    body = signed_in_client(other, other.test_client(), world["ada"]).post("/api/v1/me/access-token").json
    assert body["expires_in"] == 60


def test_an_expired_token_is_refused_by_the_verifier(app, client, world):
    signed_in_client(app, client, world["ada"])
    with timeutil.frozen(timeutil.now() - timedelta(minutes=6)):  # issued six minutes ago
        token = client.post("/api/v1/me/access-token").json["token"]
    key = jwt.PyJWK(client.get("/.well-known/jwks.json").json["keys"][0])
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(token, key, algorithms=["EdDSA"], audience=AUDIENCE)  # the verifier's clock is the real one


def test_the_spec_documents_the_token_and_the_keys(client):
    spec = client.get("/api/v1/openapi.json").json
    operation = spec["paths"]["/api/v1/me/access-token"]["post"]
    assert operation["security"] == [{"memberSession": []}]
    assert operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("AccessTokenOut")
    assert {"token", "expires_at", "expires_in"} == set(spec["components"]["schemas"]["AccessTokenOut"]["properties"])
    keys = spec["paths"]["/.well-known/jwks.json"]["get"]
    assert keys["security"] == [] and keys["responses"]["200"]["content"]["application/json"]["schema"]["$ref"] \
        .endswith("/Jwks")
