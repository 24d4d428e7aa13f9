"""Payment gateways behind one interface: the embedded sandbox (default) and Stripe."""

from __future__ import annotations

from flask import current_app

from billing.gateways.base import CardDetails, ChargeResult, Gateway, SetupStart  # noqa: F401
from billing.gateways.sandbox import SandboxGateway
from billing.gateways.stripe_gateway import StripeGateway


def get(name: str | None = None) -> Gateway:
    name = name or current_app.config["BILLING_GATEWAY"]
    if name == "sandbox":
        return SandboxGateway()
    if name == "stripe":
        return StripeGateway(current_app.config["STRIPE_SECRET_KEY"])
    raise LookupError(f"unknown billing gateway {name!r}")
