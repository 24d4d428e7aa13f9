"""Keap REST v2 bodies in the documented shapes (infusionsoft/keap-sdk sdks/v2/swagger.yml), and helpers
that register them on a ``responses`` mock."""

from __future__ import annotations

import requests
from responses import matchers

BASE = "https://api.keap.com/crm/rest/v2"
API_KEY = "KeapAK-test-service-account-key-0123456789"
SESSION_KEY = "keap-session-key-must-never-be-stored-7f3a9c"
CARD_NUMBER = "4111111111111111"


def contact(contact_id, *emails: str, given_name: str = "Jane") -> dict:
    return {
        "id": str(contact_id),
        "given_name": given_name,
        "family_name": "Buyer",
        "email_addresses": [
            {"email": email, "field": f"EMAIL{i}", "email_opt_status": "UNENGAGED_MARKETABLE",
             "is_opt_in": True, "opt_in_reason": "Customer opted in"}
            for i, email in enumerate(emails, start=1)
        ],
    }


def subscription(sub_id, contact_id, *, product_id="789", payment_method_id="pm-old", merchant_account_id="1",
                 billing_amount=49.0, billing_cycle="MONTH", billing_frequency=1, start_date="2024-05-21",
                 next_bill_date="2024-06-21", active=True) -> dict:
    return {
        "id": str(sub_id), "active": active, "contact_id": str(contact_id), "product_id": str(product_id),
        "subscription_plan_id": "101", "quantity": 1, "billing_amount": billing_amount, "auto_charge": True,
        "billing_frequency": billing_frequency, "billing_cycle": billing_cycle, "start_date": start_date,
        "last_bill_date": "2024-05-21", "next_bill_date": next_bill_date, "end_date": None,
        "merchant_account_id": str(merchant_account_id), "payment_method_id": str(payment_method_id),
        "max_charge_attempts": 3, "days_between_retries": 5, "allow_tax": False, "reason_stopped": None,
        "modification_time": "2025-06-15T10:30:00Z", "custom_fields": [],
    }


def payment_method(method_id, contact_id, *, last_four="4242", brand="Visa", merchant_account_id="1",
                   created_time="2024-01-10T09:00:00Z", month="07", year="2030", status=None) -> dict:
    body = {
        "contact_id": str(contact_id), "payment_method_id": str(method_id), "credit_card_id": "55",
        "merchant_account_type": "STRIPE", "merchant_account_id": str(merchant_account_id),
        "payment_method_type": "CARD", "created_time": created_time,
        "card_info": {"brand": brand, "fingerprint": "fp_" + str(method_id), "card_type": "CREDIT",
                      "last_four": last_four, "expiration_year": year, "expiration_month": month},
    }
    if status:
        body["status"] = status
    return body


def product(product_id, name) -> dict:
    return {"id": str(product_id), "name": name, "description": "", "active": True}


def error(code, message="Something failed", status="INTERNAL") -> dict:
    return {"code": code, "message": message, "status": status, "details": [{"domain": "crm", "resource": "x"}]}


THROTTLED = {"code": "429", "message": "Quota Exceeded", "status": "Request Throttled", "details": None}


# --- registering on a responses mock -------------------------------------------------------------------

def on_contacts(rsps, email: str, contacts: list[dict], *, next_page_token: str = "") -> None:
    rsps.get(f"{BASE}/contacts", json={"contacts": contacts, "next_page_token": next_page_token},
             match=[matchers.query_param_matcher({"filter": f"email=={email}", "fields": "email_addresses",
                                                  "page_size": "100"})])


def on_subscriptions(rsps, contact_id, subs: list[dict], *, page_token: str | None = None,
                     next_page_token: str = "") -> None:
    params = {"filter": f"contact_id=={contact_id};status==Active", "page_size": "100"}
    if page_token:
        params["page_token"] = page_token
    rsps.get(f"{BASE}/subscriptions", json={"subscriptions": subs, "next_page_token": next_page_token},
             match=[matchers.query_param_matcher(params)])


def on_payment_methods(rsps, contact_id, methods: list[dict], *, merchant_account_id: str | None = None) -> None:
    params = {"page_size": "100"}
    if merchant_account_id:
        params.update({"filter": f"merchant_account_id=={merchant_account_id}", "order_by": "created_time desc"})
    rsps.get(f"{BASE}/contacts/{contact_id}/paymentMethods", json={"records": methods, "next_page_token": ""},
             match=[matchers.query_param_matcher(params)])


def on_product(rsps, product_id, name) -> None:
    rsps.get(f"{BASE}/products/{product_id}", json=product(product_id, name))


def on_keap_down(rsps, path: str = "/contacts") -> None:
    rsps.get(f"{BASE}{path}", body=requests.ConnectionError("connection refused"))


def standard_member_setup(rsps, email: str, *, contact_id="101", subs=None, methods=None,
                          products=(("789", "Premium Widget"),)) -> None:
    """One contact with one monthly subscription on a Visa ending 4242."""
    on_contacts(rsps, email, [contact(contact_id, email)])
    on_subscriptions(rsps, contact_id, subs if subs is not None else [subscription("9001", contact_id)])
    on_payment_methods(rsps, contact_id, methods if methods is not None else [payment_method("pm-old", contact_id)])
    for product_id, name in products:
        on_product(rsps, product_id, name)
