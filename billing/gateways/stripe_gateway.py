"""Stripe through the official SDK: Checkout in setup mode to sign, off-session PaymentIntents to charge.

Card data stays at Stripe: the customer types it on Stripe's hosted Checkout page, and we keep the
PaymentMethod id (``pm_...``) with brand, last 4 and expiry. Declines map to attempt outcomes:

- ``authentication_required`` (or a PaymentIntent left in ``requires_action``) -> ``requires_action``
- hard declines (lost/stolen/fraudulent/expired/invalid card...) -> ``failed_hard``
- any other card decline (insufficient funds, generic decline, try again later...) -> ``failed_retryable``
- a timeout, a reset connection or Stripe's own 5xx -> ``unknown``: Stripe may have charged, so the next
  attempt first asks (:meth:`StripeGateway.find_charge`) and resends under the same idempotency key
- a PaymentIntent left ``processing`` -> ``processing`` (settled by the ``payment_intent.*`` webhooks or the sweep)
- rate limits and requests Stripe refused to run -> ``gateway_error`` (nothing was charged)

Written for Stripe API version ``STRIPE_API_VERSION``, sent with every request, so an SDK upgrade does not
change the shapes this module reads.
"""

from __future__ import annotations

import logging
from datetime import datetime

import stripe
from flask import current_app

from billing.errors import GatewayRefused
from billing.gateways.base import CardDetails, ChargeResult, Gateway, SetupStart
from billing.models import AttemptOutcome

logger = logging.getLogger(__name__)

# The API version this module is written and tested against (stripe-python 16 pins the same one).
STRIPE_API_VERSION = "2026-10-28.endive"

HARD_DECLINES = frozenset({
    "lost_card", "stolen_card", "pickup_card", "fraudulent", "restricted_card", "expired_card",
    "incorrect_number", "invalid_number", "invalid_account", "card_not_supported", "currency_not_supported",
    "do_not_honor_permanently", "revocation_of_authorization", "revocation_of_all_authorizations",
    "stop_payment_order", "transaction_not_allowed", "security_violation", "merchant_blacklist",
    "invalid_expiry_month", "invalid_expiry_year", "new_account_information_available",
})
ACTION_CODES = frozenset({"authentication_required", "card_velocity_exceeded_authentication"})


def outcome_for_decline(code: str | None, decline_code: str | None) -> AttemptOutcome:
    if code in ACTION_CODES or decline_code in ACTION_CODES:
        return AttemptOutcome.REQUIRES_ACTION
    if decline_code in HARD_DECLINES or code in HARD_DECLINES:
        return AttemptOutcome.FAILED_HARD
    return AttemptOutcome.FAILED_RETRYABLE


class StripeGateway(Gateway):
    name = "stripe"

    def __init__(self, secret_key: str | None):
        if not secret_key:
            raise LookupError("BILLING_GATEWAY is 'stripe' but STRIPE_SECRET_KEY is not set")
        retries = int(current_app.config.get("STRIPE_MAX_NETWORK_RETRIES", 2))
        self.client = stripe.StripeClient(secret_key, http_client=stripe.RequestsClient(timeout=30),
                                          max_network_retries=retries, stripe_version=STRIPE_API_VERSION)

    def start_setup(self, session, *, email, customer_ref, description, return_url, cancel_url) -> SetupStart:
        try:
            if not customer_ref:
                customer_ref = self.client.v1.customers.create(params={"email": email}).id
            separator = "&" if "?" in return_url else "?"
            checkout = self.client.v1.checkout.sessions.create(params={
                "mode": "setup",
                "customer": customer_ref,
                "payment_method_types": ["card"],
                "success_url": return_url + separator + "session_id={CHECKOUT_SESSION_ID}",
                "cancel_url": cancel_url,
                "custom_text": {"submit": {"message": description[:1200]}},
            })
        except stripe.StripeError as exc:
            logger.warning("stripe checkout setup failed: %s", type(exc).__name__)
            raise GatewayRefused("The payment provider could not start the card authorisation.") from None
        return SetupStart(redirect_url=checkout.url, reference=checkout.id)

    def complete_setup(self, session, reference, params) -> CardDetails:
        if params.get("session_id") != reference:
            raise GatewayRefused("The card authorisation did not complete.")
        try:
            checkout = self.client.v1.checkout.sessions.retrieve(
                reference, params={"expand": ["setup_intent.payment_method"]})
        except stripe.StripeError:
            raise GatewayRefused("The payment provider could not confirm the card authorisation.") from None
        intent = getattr(checkout, "setup_intent", None)
        if checkout.status != "complete" or not intent or intent.status != "succeeded":
            raise GatewayRefused("The card authorisation did not complete.")
        method = intent.payment_method
        card = method.card
        return CardDetails(token=method.id, brand=card.brand, last4=card.last4, exp_month=card.exp_month,
                           exp_year=card.exp_year, customer_ref=getattr(checkout, "customer", None))

    def charge(self, session, *, card, amount, currency, idempotency_key, description,
               metadata=None) -> ChargeResult:
        params = {"amount": amount, "currency": currency, "customer": card.customer_ref,
                  "payment_method": card.token, "off_session": True, "confirm": True, "description": description,
                  # find_charge() looks the intent up by this when the answer to this call never arrived
                  "metadata": {**(metadata or {}), "coursegate_attempt": idempotency_key}}
        try:
            intent = self.client.v1.payment_intents.create(params=params,
                                                           options={"idempotency_key": idempotency_key})
        except stripe.CardError as exc:
            error = exc.error
            intent = getattr(error, "payment_intent", None) if error else None
            code = exc.code
            decline_code = getattr(error, "decline_code", None) if error else None
            outcome = outcome_for_decline(code, decline_code)
            return ChargeResult(outcome, intent.id if intent else None, exc.user_message or code)
        except (stripe.APIConnectionError, stripe.APIError) as exc:
            # The request may have run at Stripe: only asking Stripe tells whether money moved.
            return ChargeResult(AttemptOutcome.UNKNOWN, None, f"Stripe: {type(exc).__name__}")
        except stripe.RateLimitError as exc:  # a 429 is answered before anything runs
            return ChargeResult(AttemptOutcome.GATEWAY_ERROR, None, f"Stripe: {type(exc).__name__}")
        except stripe.StripeError as exc:  # invalid request, auth: our configuration, not the card
            logger.error("stripe refused a charge request: %s", type(exc).__name__)
            return ChargeResult(AttemptOutcome.GATEWAY_ERROR, None, exc.user_message or type(exc).__name__)
        return self._result(intent)

    def find_charge(self, session, *, reference, idempotency_key, card, since: datetime) -> ChargeResult | None:
        try:
            if reference:
                return self._result(self.client.v1.payment_intents.retrieve(reference))
            # Listing is read-your-writes consistent (search is not): the customer's intents since the attempt.
            page = self.client.v1.payment_intents.list(params={
                "customer": card.customer_ref, "created": {"gte": int(since.timestamp()) - 300}, "limit": 100})
        except stripe.StripeError as exc:
            return ChargeResult(AttemptOutcome.UNKNOWN, reference, f"Stripe: {type(exc).__name__}")
        for intent in page.auto_paging_iter():
            if field(field(intent, "metadata"), "coursegate_attempt") == idempotency_key:
                return self._result(intent)
        return None

    def start_authentication(self, session, reference, *, return_url, payment_method=None) -> str:
        # Stripe's off-session recovery: confirm the intent again with its card, on-session this time.
        params = {"return_url": return_url}
        if payment_method:
            params["payment_method"] = payment_method
        try:
            intent = self.client.v1.payment_intents.confirm(reference, params=params)
        except stripe.StripeError:
            raise GatewayRefused("The payment provider could not start authentication.") from None
        action = getattr(intent, "next_action", None)
        if intent.status == "requires_action" and getattr(action, "type", None) == "redirect_to_url":
            return action.redirect_to_url.url
        return return_url  # nothing to authenticate any more: confirm() tells how it ended

    def confirm(self, session, reference) -> ChargeResult:
        try:
            intent = self.client.v1.payment_intents.retrieve(reference)
        except stripe.StripeError as exc:
            return ChargeResult(AttemptOutcome.GATEWAY_ERROR, reference, f"Stripe: {type(exc).__name__}")
        return self._result(intent)

    supports_expiry_update = True  # Stripe lets a saved card's expiry change (PaymentMethod update)

    def update_expiry(self, session, card, exp_month, exp_year) -> CardDetails:
        try:
            method = self.client.v1.payment_methods.update(
                card.token, params={"card": {"exp_month": exp_month, "exp_year": exp_year}})
        except stripe.StripeError as exc:
            logger.warning("stripe refused an expiry update: %s", type(exc).__name__)
            raise GatewayRefused("The payment provider did not accept that expiry.") from None
        updated = method.card
        return CardDetails(token=method.id, brand=updated.brand, last4=updated.last4,
                           exp_month=updated.exp_month, exp_year=updated.exp_year, customer_ref=card.customer_ref)

    @staticmethod
    def _result(intent) -> ChargeResult:
        return result_of_intent(intent)


def field(obj, name: str):
    """A field of the SDK's objects (attributes) or of a webhook's JSON (a dict)."""
    if obj is None:
        return None
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def result_of_intent(intent) -> ChargeResult:
    """A PaymentIntent: the SDK's object, or the ``data.object`` of a ``payment_intent.*`` webhook event."""
    status, ref = field(intent, "status"), field(intent, "id")
    if status == "succeeded":
        return ChargeResult(AttemptOutcome.SUCCEEDED, ref, "Payment succeeded.")
    if status in ("requires_action", "requires_confirmation"):
        return ChargeResult(AttemptOutcome.REQUIRES_ACTION, ref,
                            "The bank asks the cardholder to authenticate this payment.")
    if status == "processing":
        return ChargeResult(AttemptOutcome.PROCESSING, ref, "The payment is still processing.")
    error = field(intent, "last_payment_error")
    code, decline = field(error, "code"), field(error, "decline_code")
    message = field(error, "message") or f"Payment {status}."
    return ChargeResult(outcome_for_decline(code, decline), ref, message)


