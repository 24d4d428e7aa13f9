from __future__ import annotations

from errors import NotFound, Unprocessable


class RuleNotFound(NotFound):
    code = "automation_not_found"
    message = "No automation rule has that id."


class RunNotFound(NotFound):
    code = "automation_run_not_found"
    message = "No automation run has that id."


class EndpointNotFound(NotFound):
    code = "webhook_endpoint_not_found"
    message = "No webhook endpoint has that id."


class DeliveryNotFound(NotFound):
    code = "webhook_delivery_not_found"
    message = "No delivery with that id belongs to this webhook endpoint."


class IntegrationNotFound(NotFound):
    code = "integration_not_found"
    message = "No integration has that id."


class InvalidRule(Unprocessable):
    code = "invalid_automation"
    message = "The automation rule is not valid."


class AutomationLoop(Unprocessable):
    code = "automation_loop"
    message = "The automation rule would loop."


class ActionFailed(Exception):
    """An action could not be carried out (a level deleted since, an endpoint gone): the run is logged as failed."""
