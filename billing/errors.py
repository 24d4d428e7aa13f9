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
