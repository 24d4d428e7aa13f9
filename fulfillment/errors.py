from __future__ import annotations

from errors import Conflict, NotFound, Unprocessable


class IntegrationNotFound(NotFound):
    code = "integration_not_found"
    message = "No integration has that id."


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
