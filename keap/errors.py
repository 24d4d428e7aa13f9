"""Keap's failures, as domain errors. Keap being down or slow is *our* upstream problem, so these answer
502/503 to our own clients (never 401: a rejected service-account key is the site's misconfiguration)."""

from __future__ import annotations

from errors import CoursegateError, NotFound


class KeapError(CoursegateError):
    status = 502
    code = "keap_error"
    message = "Keap refused the request."


class KeapUnavailable(KeapError):
    status = 503
    code = "keap_unavailable"
    message = "Keap could not be reached right now; please try again in a few minutes."


class KeapRateLimited(KeapUnavailable):
    code = "keap_rate_limited"
    message = "Keap is busy right now; please try again in a minute."


class KeapAuthError(KeapError):
    code = "keap_auth_failed"
    message = "Keap rejected the site's API key; the site owner needs to check COURSEGATE_KEAP_API_KEY."


class KeapNotConfigured(KeapUnavailable):
    code = "keap_not_configured"
    message = "Keap is not configured on this site (COURSEGATE_KEAP_API_KEY is not set)."


class KeapNotFound(KeapError):
    status = 404
    code = "keap_not_found"
    message = "Keap has no such record."


class SubscriptionNotFound(NotFound):
    code = "keap_subscription_not_found"
    message = "You have no active Keap subscription with that id."


class NoNewCard(CoursegateError):
    status = 409
    code = "keap_no_new_card"
    message = ("We could not find a new card on the payment account this subscription uses. "
               "Please add the card in the form above, then press the button again.")
