"""marshmallow schemas for the membership API: separate In (load) and Out (dump) schemas."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import validate

from membership.models import EMAIL_PATTERN
from schemas_common import SLUG, QueryArgs, StrictSchema


COURSE_URL_SPEC = {"description": "Where the course lives on your site (http or https); linked from /account and "
                                  "the welcome email. null for none."}


def course_url_field(**kwargs) -> ma.fields.Url:
    return ma.fields.Url(allow_none=True, require_tld=False, schemes={"http", "https"},
                         validate=validate.Length(max=500), metadata=COURSE_URL_SPEC, **kwargs)


class CourseIn(StrictSchema):
    title = ma.fields.String(required=True, validate=validate.Length(min=1, max=200))
    slug = ma.fields.String(required=True, validate=[validate.Length(min=1, max=100), SLUG])
    status = ma.fields.String(load_default="draft", validate=validate.OneOf(["draft", "published"]))
    url = course_url_field(load_default=None)


class CourseUpdate(StrictSchema):
    title = ma.fields.String(validate=validate.Length(min=1, max=200))
    slug = ma.fields.String(validate=[validate.Length(min=1, max=100), SLUG])
    status = ma.fields.String(validate=validate.OneOf(["draft", "published"]))
    url = course_url_field()


class CourseOut(ma.Schema):
    id = ma.fields.Integer()
    title = ma.fields.String()
    slug = ma.fields.String()
    status = ma.fields.String()
    url = ma.fields.String(allow_none=True)
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime()


class CourseArgs(QueryArgs):
    status = ma.fields.String(validate=validate.OneOf(["draft", "published"]))


class LevelIn(StrictSchema):
    name = ma.fields.String(required=True, validate=validate.Length(min=1, max=200))
    slug = ma.fields.String(required=True, validate=[validate.Length(min=1, max=100), SLUG])
    course_ids = ma.fields.List(ma.fields.Integer(strict=True), load_default=list)
    duration_days = ma.fields.Integer(strict=True, allow_none=True, load_default=None,
                                      validate=validate.Range(min=1, max=36500),
                                      metadata={"description": "Days of access per grant; null for lifetime."})


class LevelUpdate(StrictSchema):
    name = ma.fields.String(validate=validate.Length(min=1, max=200))
    slug = ma.fields.String(validate=[validate.Length(min=1, max=100), SLUG])
    course_ids = ma.fields.List(ma.fields.Integer(strict=True))
    duration_days = ma.fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=1, max=36500))


class CourseRef(ma.Schema):
    id = ma.fields.Integer()
    slug = ma.fields.String()
    title = ma.fields.String()
    status = ma.fields.String()
    url = ma.fields.String(allow_none=True)


class LevelOut(ma.Schema):
    id = ma.fields.Integer()
    name = ma.fields.String()
    slug = ma.fields.String()
    duration_days = ma.fields.Integer(allow_none=True)
    course_ids = ma.fields.Method("_course_ids")
    courses = ma.fields.List(ma.fields.Nested(CourseRef))
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime()

    def _course_ids(self, level) -> list[int]:
        return [course.id for course in level.courses]


class LevelRef(ma.Schema):
    id = ma.fields.Integer()
    slug = ma.fields.String()
    name = ma.fields.String()


# What the API checks of an email address (membership.services.normalise_email), stated in the spec.
EMAIL_SPEC = {"format": "email", "pattern": EMAIL_PATTERN,
              "description": "Any case; stored trimmed and lower-case."}


class MemberIn(StrictSchema):
    email = ma.fields.String(required=True, validate=validate.Length(min=3, max=320), metadata=EMAIL_SPEC)
    name = ma.fields.String(load_default="", validate=validate.Length(max=200))
    external_source = ma.fields.String(allow_none=True, load_default=None, validate=validate.Length(max=100))
    phone = ma.fields.String(allow_none=True, load_default=None, validate=validate.Regexp(r"^\+[1-9][0-9]{6,14}$"),
                             metadata={"description": "E.164, e.g. +14155550123 (for SMS)"})


class MemberUpdate(StrictSchema):
    email = ma.fields.String(validate=validate.Length(min=3, max=320), metadata=EMAIL_SPEC)
    name = ma.fields.String(validate=validate.Length(max=200))
    external_source = ma.fields.String(allow_none=True, validate=validate.Length(max=100))
    phone = ma.fields.String(allow_none=True, validate=validate.Regexp(r"^\+[1-9][0-9]{6,14}$"))


class MemberOut(ma.Schema):
    id = ma.fields.Integer()
    email = ma.fields.String()
    name = ma.fields.String()
    external_source = ma.fields.String(allow_none=True)
    phone = ma.fields.String(allow_none=True)
    created_at = ma.fields.DateTime()
    updated_at = ma.fields.DateTime()


class MemberArgs(QueryArgs):
    email = ma.fields.String(metadata={"description": "Exact email, matched case-insensitively"})
    q = ma.fields.String(metadata={"description": "Part of an email or name"})


class GrantIn(StrictSchema):
    level_id = ma.fields.Integer(required=True, strict=True)
    starts_at = ma.fields.AwareDateTime(default_timezone=None, load_default=None, allow_none=True)
    ends_at = ma.fields.AwareDateTime(load_default=None, allow_none=True,
                                      metadata={"description": "When access ends; null for the level's duration "
                                                               "or lifetime"})
    note = ma.fields.String(load_default=None, allow_none=True, validate=validate.Length(max=500))


class GrantArgs(QueryArgs):
    status = ma.fields.String(validate=validate.OneOf(["active", "past_due", "paused", "revoked", "expired"]))


class RevokeIn(StrictSchema):
    reason = ma.fields.String(required=True, validate=validate.Length(min=1, max=200))


class GrantOut(ma.Schema):
    id = ma.fields.Integer()
    member_id = ma.fields.Integer()
    level = ma.fields.Nested(LevelRef)
    status = ma.fields.String()
    gives_access = ma.fields.Method("_gives_access")
    starts_at = ma.fields.DateTime()
    ends_at = ma.fields.DateTime(allow_none=True)
    revoked_at = ma.fields.DateTime(allow_none=True)
    revoke_reason = ma.fields.String(allow_none=True)
    revoke_at = ma.fields.DateTime(allow_none=True, metadata={"description": "A revocation scheduled for later"})
    source = ma.fields.Method("_source")
    note = ma.fields.String(allow_none=True)
    created_at = ma.fields.DateTime()

    def _gives_access(self, grant) -> bool:
        return grant.gives_access()

    def _source(self, grant) -> dict:
        return {
            "kind": grant.source_kind,
            "integration_id": grant.integration_id,
            "order_id": grant.order_ref,
            "line": grant.line_ref,
            "subscription_id": grant.subscription_ref,
            "mandate_id": grant.mandate_id,
        }


class AccessArgs(QueryArgs):
    email = ma.fields.String(required=True)
    course = ma.fields.String(required=True, metadata={"description": "Course slug"})


class AccessOut(ma.Schema):
    allowed = ma.fields.Boolean()
    levels = ma.fields.List(ma.fields.String(), metadata={"description": "Slugs of the levels that open the course"})


# --- the signed-in member's own view (GET /api/v1/me) ----------------------------------------------

class MeMember(ma.Schema):
    id = ma.fields.Integer()
    email = ma.fields.String()
    name = ma.fields.String()
    has_password = ma.fields.Boolean()


class MeCourse(ma.Schema):
    id = ma.fields.Integer()
    slug = ma.fields.String()
    title = ma.fields.String()
    url = ma.fields.String(allow_none=True, metadata={"description": "Where the course lives; null if not set"})


class MeLevel(ma.Schema):
    id = ma.fields.Integer(attribute="level.id")
    slug = ma.fields.String(attribute="level.slug")
    name = ma.fields.String(attribute="level.name")
    status = ma.fields.String(metadata={"description": "active, or past_due when a payment failed"})
    ends_at = ma.fields.DateTime(allow_none=True, metadata={"description": "When access ends; null for no end"})
    courses = ma.fields.List(ma.fields.Nested(MeCourse), metadata={"description": "Published courses it opens"})


class MeNotice(ma.Schema):
    code = ma.fields.Constant("past_due")
    level = ma.fields.String(attribute="level.slug")
    since = ma.fields.DateTime(allow_none=True)
    access_ends_at = ma.fields.DateTime(allow_none=True)
    card_update_url = ma.fields.String(allow_none=True)


class MePastLevel(ma.Schema):
    slug = ma.fields.String(attribute="level.slug")
    name = ma.fields.String(attribute="level.name")
    status = ma.fields.String()
    ended_at = ma.fields.DateTime(allow_none=True)


class MeOut(ma.Schema):
    member = ma.fields.Method("_member")
    levels = ma.fields.List(ma.fields.Nested(MeLevel))
    notices = ma.fields.List(ma.fields.Nested(MeNotice))
    past_levels = ma.fields.List(ma.fields.Nested(MePastLevel), attribute="past")

    def _member(self, summary) -> dict:
        member = summary.member
        return MeMember().dump({"id": member.id, "email": member.email, "name": member.name,
                                "has_password": summary.has_password})


class AccessTokenOut(ma.Schema):
    token = ma.fields.String(metadata={"description": (
        "A JWT signed with a key from /.well-known/jwks.json (header `kid`). Claims: `iss` (the site URL), "
        "`aud` ('coursegate:member-access'), `sub` (member id), `email`, `levels` and `courses` (slugs of the "
        "levels held now and of the published courses they open), `iat`, `exp`, `jti`.")})
    expires_at = ma.fields.DateTime(metadata={"description": "The token's `exp`: at most MEMBER_TOKEN_MAX_AGE "
                                                             "(5 minutes) away, sooner if a level ends sooner"})
    expires_in = ma.fields.Integer(metadata={"description": "Seconds until `expires_at`"})


class JwkOut(ma.Schema):
    kty = ma.fields.String(metadata={"description": "OKP (Ed25519, the default), RSA or EC"})
    kid = ma.fields.String(metadata={"description": "RFC 7638 thumbprint; the token header's `kid`"})
    alg = ma.fields.String(metadata={"description": "EdDSA, RS256, ES256, ..."})
    use = ma.fields.String(metadata={"example": "sig"})
    crv = ma.fields.String()
    x = ma.fields.String()
    y = ma.fields.String()
    n = ma.fields.String()
    e = ma.fields.String()


class JwksOut(ma.Schema):
    keys = ma.fields.List(ma.fields.Nested(JwkOut), metadata={
        "description": "The signing key first, then former keys still valid for tokens issued before a rotation"})


class BulkUpdateIn(StrictSchema):
    external_source = ma.fields.String(required=True, allow_none=True, validate=validate.Length(max=100),
                                       metadata={"description": "The value to set, e.g. 'infusionsoft'; null clears"})
    member_ids = ma.fields.List(ma.fields.Integer(strict=True), validate=validate.Length(min=1, max=100_000))
    level_id = ma.fields.Integer(strict=True, metadata={"description": "Every member who holds this level now"})
    emails = ma.fields.List(ma.fields.String(), validate=validate.Length(min=1, max=100_000))


class BulkUpdateOut(ma.Schema):
    matched = ma.fields.Integer()
    changed = ma.fields.Integer()
    unchanged = ma.fields.Integer()
    not_found = ma.fields.List(ma.fields.Raw(), metadata={"description": "Emails or ids that match no member"})
    invalid = ma.fields.List(ma.fields.String(), metadata={"description": "Entries that are not email addresses"})
