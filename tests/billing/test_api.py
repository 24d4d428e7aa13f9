"""Owner API for plans, mandates and invoices; immutability enforced by the API and by the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

import timeutil
from extensions import db
from tests import factories
from tests.billing.helpers import invoices_of, make_plan, set_card, sign_up, tick

T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def level(app_ctx):
    level = factories.make_level(name="Gold")
    db.session.commit()
    return level


def plan_body(level, **overrides):
    return {"name": "Gold monthly", "level_id": level.id, "amount": 2900, "currency": "USD",
            "interval_unit": "month", **overrides}


def test_create_list_read_plans(api, level):
    response = api.post("/api/v1/plans", json=plan_body(level, interval_count=3))
    assert response.status_code == 201
    plan = response.json
    assert plan["currency"] == "usd" and plan["interval_count"] == 3 and plan["state"] == "active"
    assert plan["signup_url"] == f"http://coursegate.test/plans/{plan['id']}"
    assert api.get(f"/api/v1/plans/{plan['id']}").json == plan
    listing = api.get("/api/v1/plans")
    assert [p["id"] for p in listing.json] == [plan["id"]]
    assert api.get("/api/v1/plans?state=paused").json == []


@pytest.mark.parametrize("body, field", [
    ({"amount": 0}, "amount"),
    ({"amount": "29.00"}, "amount"),
    ({"currency": "dollars"}, "currency"),
    ({"interval_unit": "fortnight"}, "interval_unit"),
    ({"interval_count": 0}, "interval_count"),
    ({"colour": "gold"}, "colour"),
])
def test_create_plan_rejects_bad_input(api, level, body, field):
    response = api.post("/api/v1/plans", json=plan_body(level, **body))
    assert response.status_code == 422
    assert response.json["code"] == "validation_error" and field in response.json["errors"]


def test_create_plan_missing_fields_and_dangling_level(api, level):
    response = api.post("/api/v1/plans", json={"name": "x"})
    assert response.status_code == 422
    assert {"level_id", "amount", "currency", "interval_unit"} <= response.json["errors"].keys()
    response = api.post("/api/v1/plans", json=plan_body(level, level_id=9999))
    assert (response.status_code, response.json["code"]) == (404, "level_not_found")


def test_price_and_interval_are_immutable_through_the_api(api, level):
    plan = api.post("/api/v1/plans", json=plan_body(level)).json
    for change in ({"amount": 3900}, {"currency": "eur"}, {"interval_unit": "year"}, {"interval_count": 2}):
        response = api.patch(f"/api/v1/plans/{plan['id']}", json=change)
        assert response.status_code == 409, change
        assert response.json["code"] == "plan_immutable"
    renamed = api.patch(f"/api/v1/plans/{plan['id']}", json={"name": "Gold (monthly)", "amount": 2900})
    assert renamed.status_code == 200 and renamed.json["name"] == "Gold (monthly)"
    assert api.get(f"/api/v1/plans/{plan['id']}").json["amount"] == 2900


def test_price_and_interval_are_immutable_in_the_database(app_ctx, level):
    plan = make_plan(level=level)
    for statement in ("UPDATE billing_plans SET amount = 1 WHERE id = :id",
                      "UPDATE billing_plans SET interval_unit = 'year' WHERE id = :id",
                      "UPDATE billing_plans SET currency = 'eur' WHERE id = :id"):
        with pytest.raises(DBAPIError, match="plan_immutable"):
            db.session.execute(text(statement), {"id": plan.id})
        db.session.rollback()
    db.session.execute(text("UPDATE billing_plans SET name = 'Renamed' WHERE id = :id"), {"id": plan.id})
    db.session.commit()
    db.session.refresh(plan)
    assert (plan.name, plan.amount, plan.interval_unit) == ("Renamed", 2900, "month")


def test_mandate_terms_are_frozen_in_the_database(client, app_ctx, level):
    with timeutil.frozen(T0):
        plan = make_plan(level=level)
        mandate = sign_up(client, plan.id, "ada@example.com")
    with pytest.raises(DBAPIError, match="plan_immutable"):
        db.session.execute(text("UPDATE billing_mandates SET amount = 1 WHERE id = :id"), {"id": mandate.id})
    db.session.rollback()
    with pytest.raises(DBAPIError, match="plan_immutable"):
        db.session.execute(text("UPDATE billing_mandates SET interval_count = 2 WHERE id = :id"),
                           {"id": mandate.id})
    db.session.rollback()
    db.session.execute(text("UPDATE billing_mandates SET status = 'past_due' WHERE id = :id"), {"id": mandate.id})
    db.session.commit()


def test_pause_resume_delete_and_unknown_plan(api, level):
    plan = api.post("/api/v1/plans", json=plan_body(level)).json
    assert api.post(f"/api/v1/plans/{plan['id']}/pause").json["state"] == "paused"
    assert api.post(f"/api/v1/plans/{plan['id']}/resume").json["state"] == "active"
    deleted = api.delete(f"/api/v1/plans/{plan['id']}")
    assert deleted.json["state"] == "deleted" and deleted.json["deleted_at"]
    response = api.post(f"/api/v1/plans/{plan['id']}/resume")
    assert (response.status_code, response.json["code"]) == (409, "plan_deleted")
    assert api.get("/api/v1/plans/999").json["code"] == "plan_not_found"
    assert api.post("/api/v1/plans/999/pause").status_code == 404


def test_a_level_sold_by_a_plan_cannot_be_deleted(api, level):
    api.post("/api/v1/plans", json=plan_body(level))
    refused = api.delete(f"/api/v1/levels/{level.id}")
    assert refused.status_code == 409 and refused.json["code"] == "level_in_use"
    assert api.get(f"/api/v1/levels/{level.id}").status_code == 200


def test_billing_api_needs_the_owner_key(client):
    for path in ("/api/v1/plans", "/api/v1/mandates", "/api/v1/invoices"):
        response = client.get(path)
        assert (response.status_code, response.json["code"]) == (401, "unauthorized")


def test_mandates_can_be_listed_read_and_cancelled_but_not_created_or_changed(client, api, app_ctx, level):
    with timeutil.frozen(T0):
        plan = make_plan(level=level)
        mandate = sign_up(client, plan.id, "ada@example.com")
        listing = api.get(f"/api/v1/mandates?plan_id={plan.id}&status=active")
        assert [m["id"] for m in listing.json] == [mandate.id]
        body = api.get(f"/api/v1/mandates/{mandate.id}").json
        assert body["payment_method"] == {"brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2034}
        assert body["amount"] == 2900 and "token" not in str(body)
        assert api.post("/api/v1/mandates", json={"plan_id": plan.id, "member_id": 1}).status_code == 405
        assert api.patch(f"/api/v1/mandates/{mandate.id}", json={"amount": 1}).status_code == 405
        cancelled = api.post(f"/api/v1/mandates/{mandate.id}/cancel")
        assert cancelled.json["status"] == "cancelled" and cancelled.json["cancel_reason"] == "owner_cancelled"
        again = api.post(f"/api/v1/mandates/{mandate.id}/cancel")
        assert (again.status_code, again.json["code"]) == (409, "mandate_not_cancellable")
        assert api.get("/api/v1/mandates/999").json["code"] == "mandate_not_found"


def test_invoices_list_read_void_and_retry(client, api, app_ctx, level):
    renewal = T0 + timedelta(days=31)
    with timeutil.frozen(T0) as clock:
        plan = make_plan(level=level)
        mandate = sign_up(client, plan.id, "ada@example.com")
        set_card(mandate, "decline")
        clock[0] = renewal - timedelta(hours=48)
        tick()
        clock[0] = renewal
        tick()
        first, second = invoices_of(mandate)
        listing = api.get(f"/api/v1/invoices?mandate_id={mandate.id}")
        assert [i["number"] for i in listing.json] == [first.number, second.number]
        body = api.get(f"/api/v1/invoices/{second.id}").json
        assert (body["status"], body["payment_status"]) == ("open", "failed")
        assert [a["outcome"] for a in body["attempts"]] == ["failed_retryable"]
        assert body["attempts"][0]["gateway_ref"].startswith("sbx_pi_")

        set_card(mandate, "success")
        retried = api.post(f"/api/v1/invoices/{second.id}/retry")
        assert retried.status_code == 200
        assert retried.json["status"] == "paid"
        assert [a["initiated_by"] for a in retried.json["attempts"]] == ["tick", "owner"]
        response = api.post(f"/api/v1/invoices/{second.id}/void")
        assert (response.status_code, response.json["code"]) == (409, "invoice_not_open")

        clock[0] = renewal + timedelta(days=26)  # 48 h before the third period
        tick()
        third = invoices_of(mandate)[2]
        voided = api.post(f"/api/v1/invoices/{third.id}/void")
        assert voided.json["status"] == "void" and voided.json["payment_status"] == "not_required"
        clock[0] = third.due_at
        assert tick().charged == 0
        assert api.get("/api/v1/invoices/999").json["code"] == "invoice_not_found"


def test_openapi_documents_the_billing_routes(client):
    paths = client.get("/api/v1/openapi.json").json["paths"]
    for path in ("/api/v1/plans", "/api/v1/plans/{plan_id}/pause", "/api/v1/mandates/{mandate_id}/cancel",
                 "/api/v1/invoices/{invoice_id}/retry"):
        assert path in paths
