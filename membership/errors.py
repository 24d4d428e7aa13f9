from __future__ import annotations

from errors import Conflict, CoursegateError, NotFound, Unprocessable


class MembershipError(CoursegateError):
    pass


class MemberNotFound(NotFound):
    code = "member_not_found"
    message = "No member has that id."


class LevelNotFound(NotFound):
    code = "level_not_found"
    message = "No access level has that id."


class CourseNotFound(NotFound):
    code = "course_not_found"
    message = "No course has that id."


class GrantNotFound(NotFound):
    code = "grant_not_found"
    message = "No grant has that id."


class DuplicateSlug(Conflict):
    code = "duplicate_slug"


class DuplicateEmail(Conflict):
    code = "duplicate_email"
    message = "A member with that email already exists."


class InvalidEmail(Unprocessable):
    code = "invalid_email"
    message = "That is not a usable email address."


class LevelInUse(Conflict):
    code = "level_in_use"
    message = "That level is still used by grants or subscription plans; revoke or remove them first."


class GrantAlreadyRevoked(Conflict):
    code = "grant_already_revoked"
    message = "That grant is already revoked."
