"""The embedded sandbox gateway: a hosted card page served by the app that behaves like a provider.

The page at ``/sandbox/checkout/<token>`` takes a test card number, turns it into a token (``sbx_pm_...``)
plus brand, last 4 and expiry, and forgets the number: it is neither stored nor logged. Which test number
was entered decides how later charges to that token behave:

=====================  ===================  =====================================
card number            charges              attempt outcome
=====================  ===================  =====================================
4242 4242 4242 4242    succeed              ``succeeded``
5555 5555 5555 4444    succeed (Mastercard) ``succeeded``
4000 0000 0000 0002    declined             ``failed_retryable`` (card_declined)
4000 0000 0000 9995    insufficient funds   ``failed_retryable`` (insufficient_funds)
4000 0000 0000 3220    need 3-D Secure      ``requires_action`` (authenticate on /sandbox/authenticate)
4000 0000 0000 0069    expired card         ``failed_hard`` (expired_card)
4000 0000 0000 0119    processing error     ``gateway_error`` (processing_error)
=====================  ===================  =====================================

Any expiry in the future and any 3-digit CVC work. Tests can flip a saved card's behaviour with
:func:`set_card_behaviour`, as a provider's test mode lets you, to two more that no test number gives:
``timeout_after_charge`` (the payment succeeds but the answer never arrives: ``unknown``) and
``processing`` (taken, not settled: ``processing`` until :func:`settle_payment`).
"""

from __future__ import annotations

import logging
import secrets
from datetime import date
from urllib.parse import urlencode

from flask import Blueprint, abort, current_app, redirect, render_template, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from billing.errors import GatewayRefused
from billing.gateways.base import CardDetails, ChargeResult, Gateway, SetupStart
from billing.models import AttemptOutcome, SandboxCard, SandboxPayment
from extensions import db, protect_forms
from membership import tokens

logger = logging.getLogger(__name__)

SESSION_SALT = "coursegate.billing.sandbox-session"
RESULT_SALT = "coursegate.billing.sandbox-result"
SESSION_MAX_AGE = 24 * 3600

TEST_CARDS: dict[str, tuple[str, str]] = {  # number -> (behaviour, brand)
    "4242424242424242": ("success", "visa"),
    "5555555555554444": ("success", "mastercard"),
    "4000000000000002": ("decline", "visa"),
    "4000000000009995": ("insufficient_funds", "visa"),
    "4000000000003220": ("requires_action", "visa"),
    "4000000000000069": ("expired_card", "visa"),
    "4000000000000119": ("processing_error", "visa"),
}

# behaviour -> (payment status at the "provider", attempt outcome, decline code, message)
BEHAVIOURS = {
    "success": ("succeeded", AttemptOutcome.SUCCEEDED, None, "Payment succeeded."),
    "decline": ("failed", AttemptOutcome.FAILED_RETRYABLE, "card_declined", "The card was declined."),
    "insufficient_funds": ("failed", AttemptOutcome.FAILED_RETRYABLE, "insufficient_funds",
                           "The card has insufficient funds."),
    "requires_action": ("requires_action", AttemptOutcome.REQUIRES_ACTION, "authentication_required",
                        "The bank asks the cardholder to authenticate this payment."),
    "expired_card": ("failed", AttemptOutcome.FAILED_HARD, "expired_card", "The card has expired."),
    "processing_error": ("failed", AttemptOutcome.GATEWAY_ERROR, "processing_error",
                         "The provider could not process the payment; try again later."),
    "timeout_after_charge": ("succeeded", AttemptOutcome.UNKNOWN, None, "The provider did not answer in time."),
    "processing": ("processing", AttemptOutcome.PROCESSING, None, "The payment is processing."),
}


def luhn_ok(number: str) -> bool:
    digits = [int(d) for d in number]
    checksum = 0
    for i, digit in enumerate(reversed(digits)):
        if i % 2:
            digit *= 2
            digit -= 9 if digit > 9 else 0
        checksum += digit
    return checksum % 10 == 0


def set_card_behaviour(session: Session, token: str, behaviour: str) -> None:
    """Test-mode control: make later charges to ``token`` behave as ``behaviour``."""
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"unknown sandbox behaviour {behaviour!r}")
    card = session.scalar(select(SandboxCard).where(SandboxCard.token == token))
    card.behaviour = behaviour
    session.flush()


def settle_payment(session: Session, reference: str, status: str) -> None:
    """Test-mode control: the provider settles a ``processing`` payment (``succeeded`` or ``failed``)."""
    payment = session.scalar(select(SandboxPayment).where(SandboxPayment.reference == reference))
    payment.status = status
    payment.decline_code = "card_declined" if status == "failed" else None
    session.flush()


def create_card(session: Session, number: str, exp_month: int, exp_year: int) -> SandboxCard:
    """What the hosted page does with a valid test number: keep a token and display details only."""
    behaviour, brand = TEST_CARDS[number]
    card = SandboxCard(token="sbx_pm_" + secrets.token_hex(12), behaviour=behaviour, brand=brand,
                       last4=number[-4:], exp_month=exp_month, exp_year=exp_year)
    session.add(card)
    session.flush()
    return card


class SandboxGateway(Gateway):
    name = "sandbox"

    def start_setup(self, session, *, email, customer_ref, description, return_url, cancel_url) -> SetupStart:
        reference = "sbx_cs_" + secrets.token_hex(12)
        token = tokens.sign(SESSION_SALT, {"ref": reference, "return": return_url, "cancel": cancel_url,
                                           "desc": description, "email": email})
        return SetupStart(redirect_url=f"{current_app.config['SITE_URL']}/sandbox/checkout/{token}",
                          reference=reference)

    def complete_setup(self, session, reference, params) -> CardDetails:
        check = tokens.check(RESULT_SALT, params.get("sandbox_result", ""), SESSION_MAX_AGE)
        if check.status != "ok" or check.payload.get("ref") != reference:
            raise GatewayRefused("The card authorisation did not complete.")
        card = session.scalar(select(SandboxCard).where(SandboxCard.token == check.payload["pm"]))
        if card is None:
            raise GatewayRefused("The card authorisation did not complete.")
        return CardDetails(token=card.token, brand=card.brand, last4=card.last4, exp_month=card.exp_month,
                           exp_year=card.exp_year, customer_ref=None)

    def charge(self, session, *, card, amount, currency, idempotency_key, description,
               metadata=None) -> ChargeResult:
        # One lookup: the card, and the payment already made under this idempotency key, if any.
        row = session.execute(
            select(SandboxCard, SandboxPayment)
            .outerjoin(SandboxPayment, SandboxPayment.idempotency_key == idempotency_key)
            .where(SandboxCard.token == card.token)
        ).first()
        if row is None:
            return ChargeResult(AttemptOutcome.FAILED_HARD, None, "No such payment method at the sandbox.")
        stored, existing = row
        if existing is not None:  # a provider answers a repeated idempotency key with the first result
            return self._result(existing)
        status, _, code, _ = BEHAVIOURS[stored.behaviour]
        payment = SandboxPayment(reference="sbx_pi_" + secrets.token_hex(12), idempotency_key=idempotency_key,
                                 card_token=card.token, amount=amount, currency=currency, status=status,
                                 decline_code=code)
        session.add(payment)
        if stored.behaviour == "timeout_after_charge":  # charged; the answer is lost on the way back
            return ChargeResult(AttemptOutcome.UNKNOWN, None, BEHAVIOURS["timeout_after_charge"][3])
        return self._result(payment, behaviour=stored.behaviour)

    def find_charge(self, session, *, reference, idempotency_key, card, since) -> ChargeResult | None:
        match = (SandboxPayment.reference == reference if reference
                 else SandboxPayment.idempotency_key == idempotency_key)
        payment = session.scalar(select(SandboxPayment).where(match))
        return None if payment is None else self._result(payment)

    def start_authentication(self, session, reference, *, return_url, payment_method=None) -> str:
        token = tokens.sign(SESSION_SALT, {"pay": reference, "return": return_url})
        return f"{current_app.config['SITE_URL']}/sandbox/authenticate/{token}"

    def confirm(self, session, reference) -> ChargeResult:
        payment = session.scalar(select(SandboxPayment).where(SandboxPayment.reference == reference))
        if payment is None:
            return ChargeResult(AttemptOutcome.FAILED_HARD, reference, "No such payment at the sandbox.")
        return self._result(payment)

    supports_expiry_update = True

    def update_expiry(self, session, card, exp_month, exp_year) -> CardDetails:
        stored = session.scalar(select(SandboxCard).where(SandboxCard.token == card.token))
        if stored is None:
            raise GatewayRefused("The sandbox does not know that card.")
        stored.exp_month, stored.exp_year = exp_month, exp_year
        session.flush()
        return CardDetails(token=stored.token, brand=stored.brand, last4=stored.last4, exp_month=exp_month,
                           exp_year=exp_year, customer_ref=card.customer_ref)

    @staticmethod
    def _result(payment: SandboxPayment, behaviour: str | None = None) -> ChargeResult:
        if payment.status == "succeeded":
            return ChargeResult(AttemptOutcome.SUCCEEDED, payment.reference, "Payment succeeded.")
        if payment.status == "requires_action":
            return ChargeResult(AttemptOutcome.REQUIRES_ACTION, payment.reference, BEHAVIOURS["requires_action"][3])
        if payment.status == "processing":
            return ChargeResult(AttemptOutcome.PROCESSING, payment.reference, BEHAVIOURS["processing"][3])
        if payment.decline_code == "authentication_failed":
            return ChargeResult(AttemptOutcome.FAILED_RETRYABLE, payment.reference,
                                "The cardholder did not authenticate the payment.")
        for name, (_, outcome, code, message) in BEHAVIOURS.items():
            if code == payment.decline_code and (behaviour is None or behaviour == name):
                return ChargeResult(outcome, payment.reference, message)
        return ChargeResult(AttemptOutcome.FAILED_HARD, payment.reference, payment.decline_code)


# --- the hosted pages ------------------------------------------------------------------------------

bp = Blueprint("sandbox_gateway", __name__, url_prefix="/sandbox")


protect_forms(bp)


def _session_payload(token: str) -> dict:
    check = tokens.check(SESSION_SALT, token, SESSION_MAX_AGE)
    if check.status != "ok":
        abort(404)
    return check.payload


def _parse_card(form) -> tuple[str, int, int, list[str]]:
    problems = []
    number = "".join(ch for ch in form.get("cardnumber", "") if ch.isdigit())
    if not (12 <= len(number) <= 19) or not luhn_ok(number):
        problems.append("That card number is not valid.")
    elif number not in TEST_CARDS:
        problems.append("The sandbox only accepts its test card numbers (see the list below).")
    exp_month = exp_year = 0
    month, _, year = form.get("exp", "").strip().partition("/")
    try:
        exp_month, exp_year = int(month), int(year)
        exp_year += 2000 if exp_year < 100 else 0
        if not 1 <= exp_month <= 12:
            raise ValueError
        today = date.today()
        if (exp_year, exp_month) < (today.year, today.month):
            problems.append("That card has expired.")
    except ValueError:
        problems.append("Enter the expiry as MM/YY.")
    cvc = form.get("cvc", "").strip()
    if not (cvc.isdigit() and len(cvc) in (3, 4)):
        problems.append("Enter the 3 or 4 digit security code.")
    return number, exp_month, exp_year, problems


@bp.route("/checkout/<token>", methods=["GET", "POST"])
def checkout(token: str):
    payload = _session_payload(token)
    if "ref" not in payload:
        abort(404)
    problems: list[str] = []
    if request.method == "POST":
        number, exp_month, exp_year, problems = _parse_card(request.form)
        if not problems:
            card = create_card(db.session, number, exp_month, exp_year)
            db.session.commit()
            result = tokens.sign(RESULT_SALT, {"ref": payload["ref"], "pm": card.token})
            separator = "&" if "?" in payload["return"] else "?"
            return redirect(payload["return"] + separator + urlencode({"sandbox_result": result}))
    return render_template("billing/sandbox_checkout.html", payload=payload, problems=problems,
                           test_cards=TEST_CARDS), (422 if problems else 200)


@bp.route("/authenticate/<token>", methods=["GET", "POST"])
def authenticate(token: str):
    payload = _session_payload(token)
    if "pay" not in payload:
        abort(404)
    payment = db.session.scalar(select(SandboxPayment).where(SandboxPayment.reference == payload["pay"]))
    if payment is None:
        abort(404)
    if request.method == "POST":
        if payment.status == "requires_action":
            if request.form.get("decision") == "complete":
                payment.status, payment.decline_code = "succeeded", None
            else:
                payment.status, payment.decline_code = "failed", "authentication_failed"
            db.session.commit()
        return redirect(payload["return"])
    return render_template("billing/sandbox_authenticate.html", payment=payment)
