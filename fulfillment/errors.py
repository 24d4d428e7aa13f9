from __future__ import annotations

from errors import Conflict, CoursegateError, NotFound, Unprocessable


class IntegrationNotFound(NotFound):
    code = "integration_not_found"
    message = "No integration has that id."


class NotKeapIntegration(Conflict):
    code = "not_a_keap_integration"
    message = "That integration is not a Keap integration; only Keap has an HTTP Post setup."


class RuleNotFound(NotFound):
    code = "rule_not_found"
    message = "No fulfillment rule has that id for this integration."


class NoPublishedCourse(Unprocessable):
    code = "no_published_course"
    message = ("An integration cannot be saved while no course is published: publish at least one course "
               "so a purchase has something to unlock.")


class DuplicateRule(Conflict):
    code = "duplicate_rule"
    message = ("A rule for this product, pricing option and item type already exists; update it instead.")


class WebhookUnauthorized(CoursegateError):
    status = 401
    code = "invalid_signature"
    message = "The delivery is not signed with this integration's secret."


class UnparseableBody(CoursegateError):
    status = 400
    code = "unparseable_body"
    message = "The body could not be parsed."


class InvalidPayload(Unprocessable):
    code = "invalid_payload"
    message = "The event does not follow the documented format."


class EventNotFound(NotFound):
    code = "event_not_found"
    message = "No webhook event has that id."


class EventNotReplayable(Conflict):
    code = "event_already_processed"
    message = "That event was processed already; replaying it would apply it twice."


class StripeApiError(CoursegateError):
    status = 502
    code = "stripe_api_error"
    message = "Stripe's API could not be reached or refused the request."
