from __future__ import annotations

from errors import Conflict, CoursegateError, NotFound, Unprocessable


class BillingError(CoursegateError):
    pass


class PlanNotFound(NotFound):
    code = "plan_not_found"
    message = "No plan has that id."


class MandateNotFound(NotFound):
    code = "mandate_not_found"
    message = "No subscription has that id."


class InvoiceNotFound(NotFound):
    code = "invoice_not_found"
    message = "No invoice has that id."


class PlanImmutable(Conflict):
    code = "plan_immutable"
    message = "A plan's price and interval never change; create a new plan instead."


class PlanNotAvailable(Conflict):
    code = "plan_not_available"
    message = "This plan is not open for sign-ups."


class PlanDeleted(Conflict):
    code = "plan_deleted"
    message = "That plan is deleted and cannot change any more."


class MandateNotCancellable(Conflict):
    code = "mandate_not_cancellable"
    message = "That subscription has already ended."


class MandateNotPending(Conflict):
    code = "mandate_not_pending"
    message = "That subscription is no longer waiting for authorisation."


class InvoiceNotOpen(Conflict):
    code = "invoice_not_open"
    message = "That invoice is not open."


class InvoiceBusy(Conflict):
    code = "invoice_busy"
    message = "That invoice is being charged right now; try again in a moment."


class NoPaymentMethod(Conflict):
    code = "no_payment_method"
    message = "There is no card on file for that subscription."


class GatewayRefused(Unprocessable):
    code = "gateway_refused"
    message = "The payment provider did not accept that."


# --- card updates and update-by-invitation ---------------------------------------------------------

class PaymentMethodNotFound(NotFound):
    code = "payment_method_not_found"
    message = "That member has no payment method with that id."


class PaymentMethodRequired(Unprocessable):
    code = "payment_method_required"
    message = "The member has more than one payment method: say which one with payment_method_id."


class NoEmail(Unprocessable):
    code = "no_email"
    message = "The member has no usable email address, so they cannot be invited."


class NoPhone(Unprocessable):
    code = "no_phone"
    message = "The member has no phone number for an SMS."


class SmsNotConfigured(Unprocessable):
    code = "sms_not_configured"
    message = "No SMS provider is configured; invite by email only."


class ExpiryUpdateUnsupported(Conflict):
    code = "expiry_update_unsupported"
    message = "This payment provider cannot change a card's expiry; add the card again instead."


class InvalidExpiry(Unprocessable):
    code = "invalid_expiry"
    message = "Enter an expiry month (1-12) and a year that is not in the past."


class InvitationNotFound(NotFound):
    code = "invitation_not_found"
    message = "No invitation has that id."


class InvitationClosed(Conflict):
    code = "invitation_closed"
    message = "That invitation is already completed, expired or revoked."


class PauseNotAllowed(Conflict):
    code = "pause_not_allowed"
    message = "This subscription cannot be paused."


class NotPaused(Conflict):
    code = "subscription_not_paused"
    message = "That subscription is not paused."
