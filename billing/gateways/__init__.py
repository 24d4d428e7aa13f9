"""Payment gateways behind one interface: the embedded sandbox (default) and Stripe."""

from __future__ import annotations

from flask import current_app

from billing.gateways.base import CardDetails, ChargeResult, Gateway, SetupStart  # noqa: F401


def get(name: str | None = None) -> Gateway:
    name = name or current_app.config["BILLING_GATEWAY"]
    # Imported when chosen: a host that never bills through Stripe never loads the Stripe SDK (a large import
    # for every process), and the sandbox's module (with its hosted card page) is not needed in production.
    if name == "sandbox":
        from billing.gateways.sandbox import SandboxGateway

        return SandboxGateway()
    if name == "stripe":
        from billing.gateways.stripe_gateway import StripeGateway

        return StripeGateway(current_app.config["STRIPE_SECRET_KEY"])
    raise LookupError(f"unknown billing gateway {name!r}")
